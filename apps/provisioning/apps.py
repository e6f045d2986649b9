from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "apps.provisioning"
    label = "provisioning"

    def ready(self) -> None:
        # Registers the Celery tasks in every process (web too): `dispatch` sends them by name.
        from apps.provisioning import tasks  # noqa: F401
