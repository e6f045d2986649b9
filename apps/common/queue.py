"""Celery tasks sent by their registered name, so that the code that enqueues work never imports
the module that defines it (a service below its app's tasks.py, which imports the service)."""

from typing import Any

from celery import current_app
from django.db import transaction


def registered_task(name: str) -> Any:
    """The task registered as `name` (every app's tasks.py is imported by Celery's autodiscovery)."""
    return current_app.tasks[name]


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Send the task `name` with `args` once this transaction commits (at once outside one)."""
    transaction.on_commit(lambda: registered_task(name).delay(*args))
