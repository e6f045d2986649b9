"""Celery tasks sent by their registered name, so that the code that enqueues work never imports
the module that defines it (a service below its app's tasks.py, which imports the service)."""

from typing import Any

from celery import current_app
from django.db import transaction


def registered_task(name: str) -> Any:
    """The task registered as `name`.

    Celery's autodiscovery imports every app's tasks.py only when the worker starts; a web process
    that has not imported a tasks module yet asks the loader for them once (importing the modules
    is idempotent), rather than failing with NotRegistered."""
    tasks = current_app.tasks
    if name not in tasks:
        current_app.loader.import_default_modules()
    return tasks[name]


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Send the task `name` with `args` once this transaction commits (at once outside one)."""
    transaction.on_commit(lambda: registered_task(name).delay(*args))
