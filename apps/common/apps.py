from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "apps.common"
    label = "common"

    def ready(self) -> None:
        from django.core.signals import request_finished, request_started
        from django.db.models.signals import post_migrate

        from apps.common import generations, lookups, rowcounts

        lookups.register()  # `field__any=[...]` (apps.common.lookups)

        # Caches of rarely changed settings read their generation tokens once per request, and the
        # triggers that replace them are (re)made after every migrate (apps.common.generations).
        request_started.connect(generations.request_started, dispatch_uid="common.generations_request_started")
        request_finished.connect(generations.request_finished, dispatch_uid="common.generations_request_finished")
        post_migrate.connect(generations.ensure_triggers, sender=self, dispatch_uid="common.generation_triggers")
        # Exact row counts of large tables, kept by triggers made (and recounted) after every migrate.
        post_migrate.connect(rowcounts.ensure_triggers, sender=self, dispatch_uid="common.rowcount_triggers")
