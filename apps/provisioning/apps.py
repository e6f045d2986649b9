from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "apps.provisioning"
    label = "provisioning"

    def ready(self) -> None:
        from apps.connectors import changes as connector_changes
        from apps.directory import changes as directory_changes

        # Registers the Celery tasks in every process (web too): `dispatch` sends them by name.
        from apps.provisioning import outbox, tasks  # noqa: F401

        # Every change to the directory or to a connector's scope is recorded in the outbox, in
        # the change's own transaction; those apps never import this one.
        directory_changes.listen(outbox)
        connector_changes.listen(outbox)

        from apps.provisioning import counts

        # The console's counts of a connector's objects per state (apps.common.rowcounts), and the
        # links' count of unprocessed events that says which wait (apps.provisioning.waiting).
        counts.register()
        from django.db.models.signals import post_migrate

        from apps.provisioning import waiting

        post_migrate.connect(waiting.ensure_triggers, sender=self, dispatch_uid="provisioning.waiting_triggers")
