"""Downstream apps for provisioning tests: scim2-server (a real SCIM implementation) on loopback."""

import contextlib
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_process, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScimServerProcess:
    """scim2-server in a subprocess; `http` reads its state back over its own SCIM API."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def start(self) -> None:
        executable = Path(sys.executable).with_name("scim2-server")
        self.process = subprocess.Popen(
            [str(executable), "--bearer-token", self.token, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ready, timeout=20, message="scim2-server to listen")

    def _ready(self) -> bool:
        try:
            return self.http.get("/ServiceProviderConfig").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.http.close()

    def users(self) -> list[dict]:
        return self._all("/Users")

    def groups(self) -> list[dict]:
        return self._all("/Groups")

    def _all(self, path: str) -> list[dict]:
        response = self.http.get(path, params={"count": 1000})
        response.raise_for_status()
        return response.json().get("Resources", [])

    def user_by_name(self, user_name: str) -> dict | None:
        found = self.http.get("/Users", params={"filter": f'userName eq "{user_name}"'}).json().get("Resources", [])
        return found[0] if found else None

    def reset(self) -> None:
        for user in self.users():
            self.http.delete(f"/Users/{user['id']}")
        for group in self.groups():
            self.http.delete(f"/Groups/{group['id']}")


@pytest.fixture(scope="session")
def scim_downstream_session() -> Iterator[ScimServerProcess]:
    server = ScimServerProcess(token=f"downstream-{uuid.uuid4().hex}")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scim_downstream(scim_downstream_session) -> ScimServerProcess:
    scim_downstream_session.reset()
    return scim_downstream_session


# --- Fixtures of the provisioning tests ----------------------------------------------------------


@pytest.fixture
def downstream():
    """The strict, fault-injecting SCIM app of tests/provisioning/downstream.py, on loopback."""
    from tests.provisioning.downstream import FaultyScimServer

    server = FaultyScimServer().start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _fresh_scim_clients():
    """Each test starts without the keep-alive clients (and their connections) of the previous one."""
    from apps.provisioning import client

    yield
    with client._clients_lock:
        for cached in client._clients.values():
            cached.close()
        client._clients.clear()


@pytest.fixture
def fast_retries(settings):
    """Backoff of milliseconds, so that in-process tests can wait for retries to come due."""
    settings.PROVISIONING_RETRY_BASE_SECONDS = 0.005
    settings.PROVISIONING_RETRY_MAX_SECONDS = 0.02
    return settings


@pytest.fixture
def only_this_process_provisions():
    """This process's tasks go to a queue no worker reads, so the session's `celery_worker_process`
    (once a test has started it) cannot take the connector's work while the test drives the engine
    step by step: in CI it claimed a user and wrote its outcome after the test had looked."""
    from idp_portal.celery import app

    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = f"nobody-{uuid.uuid4().hex[:8]}"
    try:
        yield
    finally:
        with contextlib.suppress(Exception), app.connection_for_write() as connection:
            connection.default_channel.queue_purge(app.conf.task_default_queue)
        app.conf.task_default_queue = default_queue


@pytest.fixture
def provisioning_workers(transactional_db):
    """Start real workers (beat embedded) on a queue of this test's own: `provisioning_workers.start(...)`.

    This process's tasks go to that queue meanwhile, so that no other worker (the session's
    `celery_worker_process` on the default queue) takes them.
    """
    from idp_portal.celery import app
    from tests.provisioning.helpers import WorkerFactory

    factory = WorkerFactory()
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = factory.queue
    try:
        yield factory
    finally:
        factory.stop_all()
        app.conf.task_default_queue = default_queue


@pytest.fixture
def private_redis():
    """A redis-server of this test's own on a free port (never the shared one on 6379)."""
    from tests.provisioning.helpers import RedisServer

    server = RedisServer().start()
    yield server
    server.close()
