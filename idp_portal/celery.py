"""The Celery application; configuration is read from Django settings prefixed CELERY_."""

import os

from celery import Celery
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp_portal.settings")

app = Celery("idp_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _ensure_filesystem_broker_folders() -> None:
    from pathlib import Path

    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        Path(options[key]).mkdir(parents=True, exist_ok=True)


@app.on_after_configure.connect
def _prepare_broker(sender: Celery, **kwargs: object) -> None:
    _ensure_filesystem_broker_folders()


@task_postrun.connect
def _return_freed_memory(**kwargs: object) -> None:
    """A worker's memory stays at its largest task otherwise (apps.common.memory)."""
    from apps.common.memory import return_freed_memory

    return_freed_memory()
