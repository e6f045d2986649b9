import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import factory.random
import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.api.services import api_token_create
from tests.factories import UserFactory

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _repeatable_fake_data() -> None:
    """Faker names are drawn from a fixed seed per test, so a search in one test cannot match a
    name that only some runs (or some xdist orders) happen to generate."""
    factory.random.reseed_random("idp-portal")


@pytest.fixture(autouse=True)
def _empty_settings_caches() -> Iterator[None]:
    """Each test starts with empty caches of rarely changed settings (apps.common.generations):
    every test's database starts from the same generation tokens, rolled back."""
    from apps.common.generations import clear_cache

    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root.admin", first_name="Root", last_name="Admin", is_staff=True, is_superuser=True)


@pytest.fixture
def api_client(admin_user) -> APIClient:
    """An API client authenticated with a real bearer token of a staff super-admin."""
    _, secret = api_token_create(actor=None, user=admin_user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.user = admin_user
    return client


def _database_url_for_subprocess() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def stop_process(process: subprocess.Popen | None, *, timeout: float = 20) -> None:
    """Ask a test's server or worker process to stop; kill it if it has not within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class WorkerProcess:
    def __init__(self, env: dict[str, str], queue: str) -> None:
        self.env = env
        self.queue = queue
        self.process: subprocess.Popen | None = None
        self.log_path = PROJECT_ROOT / "var" / f"test-worker-{queue}.log"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "idp_portal", "worker",
                "--loglevel=INFO", "--concurrency=1", "--pool=prefork",
                f"--hostname={self.queue}-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
            ],
            cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker) -> Iterator[WorkerProcess]:
    """A real `celery worker` subprocess on the configured broker, reading the test database."""
    with django_db_blocker.unblock():
        database_url = _database_url_for_subprocess()
    from django.conf import settings

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idp_portal.settings",
        "DATABASE_URL": database_url,
        "CELERY_DEFAULT_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
    }
    worker = WorkerProcess(env, queue)
    worker.start()
    yield worker
    worker.stop()


def wait_for(condition, *, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
