"""Shared helpers for provisioning tests: connectors, driving the engine, real workers, a private Redis."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.connectors import services as connector_services
from apps.connectors.models import Connector
from apps.directory.models import Group, User
from apps.provisioning import batch
from apps.provisioning.models import Delivery, OutboxEvent, RemoteObject
from tests.conftest import PROJECT_ROOT, _database_url_for_subprocess, wait_for
from tests.provisioning.conftest import free_port

DEFAULT_OPERATIONS = ["create_users", "update_users", "deactivate_users", "push_groups"]


def make_connector(
    downstream: Any,
    *,
    name: str = "",
    operations: list[str] | None = None,
    deprovision: str = "deactivate",
    update_method: str = "patch",
    rate_limit: int = 0,
    token: str | None = None,
    base_url: str | None = None,
    **provisioning: Any,
) -> Connector:
    """A generic SCIM connector (seed mappings) pointed at `downstream`, enabled."""
    if operations is None:
        operations = [*DEFAULT_OPERATIONS, "delete_users"] if deprovision == "delete" else list(DEFAULT_OPERATIONS)
    return connector_services.connector_create(
        actor=None,
        template="generic-scim",
        name=name or f"App {uuid.uuid4().hex[:6]}",
        enabled=True,
        provisioning={
            "enabled": True,
            "base_url": base_url or downstream.base_url,
            "token": token if token is not None else downstream.token,
            "operations": operations,
            "deprovision": deprovision,
            "update_method": update_method,
            "rate_limit_per_second": rate_limit,
            **provisioning,
        },
    )


def assign(connector: Connector, *, user: User | None = None, group: Group | None = None):
    return connector_services.assignment_create(actor=None, connector=connector, user=user, group=group)


def unassign(connector: Connector, *, user: User | None = None, group: Group | None = None) -> None:
    assignment = connector.assignments.get(user=user, group=group)
    connector_services.assignment_delete(actor=None, assignment=assignment)


def pending(connector: Connector) -> int:
    return OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).count()


def run(connector: Connector) -> batch.BatchResult:
    """One task's worth of work, in this process."""
    return batch.process_connector(connector.pk)


def sync(connector: Connector, *, timeout: float = 15.0) -> None:
    """Run the engine until no change is pending, waiting for retries to come due."""

    def settled() -> bool:
        batch.process_connector(connector.pk)
        return pending(connector) == 0

    wait_for(settled, timeout=timeout, interval=0.02, message="the connector's pending changes to be delivered")


def remote(connector: Connector, obj: Any) -> RemoteObject:
    return RemoteObject.objects.get(connector=connector, object_id=obj.pk)


def deliveries(connector: Connector) -> list[Delivery]:
    return list(Delivery.objects.filter(connector=connector).order_by("id"))


def make_due(connector: Connector) -> None:
    """Time passes: every parked retry of the connector is due now."""
    RemoteObject.objects.filter(connector=connector, next_attempt_at__isnull=False).update(
        next_attempt_at=time_ago(0.001)
    )


def time_ago(seconds: float):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)


# --- A private redis-server --------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own on a free port, without persistence: a restart loses everything."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="prov-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--protected-mode", "no",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.ping, timeout=10, message="the private redis-server to answer")
        return self

    def ping(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # no persistence: what it held is lost, as in a crash
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def dump(self) -> list[bytes]:
        """Every key and every value it holds, as bytes."""
        found: list[bytes] = []
        with self.client() as client:
            for key in client.scan_iter(count=1000):
                found.append(key)
                kind = client.type(key)
                if kind == b"string":
                    found.append(client.get(key) or b"")
                elif kind == b"list":
                    found.extend(client.lrange(key, 0, -1))
                elif kind == b"hash":
                    for field_name, value in client.hgetall(key).items():
                        found.extend([field_name, value])
                elif kind == b"set":
                    found.extend(client.smembers(key))
                elif kind == b"zset":
                    found.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        return found


@contextlib.contextmanager
def this_process_on_redis(redis_url: str, django_settings: Any) -> Iterator[None]:
    """Point this process's Celery producer, kick flags and rate limiter at `redis_url`, then restore
    (their Redis clients follow REDIS_URL, apps.common.redis)."""
    from idp_portal.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    options = {"visibility_timeout": 3600}
    django_settings.REDIS_URL = redis_url
    django_settings.CELERY_BROKER_URL = redis_url
    django_settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    app.conf.broker_url = redis_url
    app.conf.broker_transport_options = options
    _reset_producer_pools(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        _reset_producer_pools(app)


def _reset_producer_pools(app) -> None:
    """Drop every pooled broker connection of this process. kombu keeps its connection and producer
    pools in registries keyed by broker URL (`app.pool` is one of them): closing a pool without
    clearing them left that closed pool to be handed to the next test on the same broker
    ("Acquire on closed pool")."""
    from kombu import pools

    pools.reset()
    app._pool = None
    with contextlib.suppress(AttributeError, KeyError):
        app.__dict__["amqp"]._producer_pool = None


# --- Real workers ----------------------------------------------------------------------------------

FAST_WORKER_ENV = {
    "PROVISIONING_SWEEP_SECONDS": "1",
    "PROVISIONING_LEASE_SECONDS": "3",
    "PROVISIONING_RETRY_BASE_MS": "100",
    "PROVISIONING_RETRY_MAX_SECONDS": "1",
    "PROVISIONING_MAX_ATTEMPTS": "1000",
    "PROVISIONING_KICK_TTL": "2",
    # A task must finish (or release) its batch before the lease runs out, or another worker may
    # claim the same objects: the budget stays under the lease, as the defaults (45 s < 120 s) do.
    "PROVISIONING_TASK_BUDGET_SECONDS": "2",
}


class ProvisioningWorker:
    """`celery worker` (optionally with beat embedded) in its own process group, so it can be SIGKILLed whole;
    with `beat_only`, a `celery beat` process of its own (as `make run` and compose run it)."""

    def __init__(
        self, *, queue: str, env: dict[str, str], beat: bool, concurrency: int, beat_only: bool = False
    ) -> None:
        self.queue = queue
        self.env = env
        self.beat = beat
        self.beat_only = beat_only
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None
        role = "beat" if beat_only else "worker"
        self.log_path = PROJECT_ROOT / "var" / f"test-prov-{role}-{queue}.log"
        self.schedule = Path(tempfile.mkdtemp(prefix="prov-beat-")) / "schedule"
        self._log_offset = 0

    def start(self) -> "ProvisioningWorker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        command = [
            sys.executable, "-m", "celery", "-A", "idp_portal", "worker", "--loglevel=INFO",
            f"--concurrency={self.concurrency}", "--pool=prefork", "--without-gossip", "--without-mingle",
            "--without-heartbeat", f"--hostname={self.queue}-{uuid.uuid4().hex[:6]}@%h",
        ]  # fmt: skip
        if self.beat:
            command += ["-B", "-s", str(self.schedule)]
        if self.beat_only:
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "idp_portal",
                "beat",
                "--loglevel=INFO",
                "-s",
                str(self.schedule),
            ]
        self.process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        wait_for(self._ready, timeout=60, interval=0.1, message=f"the worker to be ready (log: {self.log_path})")
        return self

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            return handle.read().decode(errors="replace")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
        return ("beat: Starting..." if self.beat_only else " ready.") in self.log()

    def kill(self) -> None:
        """SIGKILL the worker, its pool processes and its beat: nothing gets to clean up."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        # Pool and beat processes share the group; make sure none outlives the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.schedule.parent, ignore_errors=True)


class WorkerFactory:
    """Starts workers on a queue of this test's own, and routes this process's tasks to it."""

    def __init__(self) -> None:
        self.queue = f"prov-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.workers: list[ProvisioningWorker] = []
        self.database_url = _database_url_for_subprocess()

    def start(
        self,
        *,
        redis_url: str | None = None,
        beat: bool = True,
        concurrency: int = 1,
        beat_only: bool = False,
        **env: str,
    ) -> ProvisioningWorker:
        worker_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "idp_portal.settings",
            "DATABASE_URL": self.database_url,
            "CELERY_DEFAULT_QUEUE": self.queue,
            "OUTBOUND_ALLOW_LOOPBACK": "true",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            **FAST_WORKER_ENV,
            **env,
        }
        if redis_url is not None:
            worker_env["REDIS_URL"] = redis_url
        elif not settings.REDIS_URL:
            worker_env.pop("REDIS_URL", None)
        worker = ProvisioningWorker(
            queue=self.queue, env=worker_env, beat=beat, concurrency=concurrency, beat_only=beat_only
        )
        self.workers.append(worker)
        return worker.start()

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


def wait_until(condition, *, timeout: float = 30.0, message: str = "condition") -> Any:
    """wait_for with the longer default that real workers need."""
    return wait_for(condition, timeout=timeout, interval=0.1, message=message)


def elapsed(start: float) -> float:
    return time.monotonic() - start
