"""Reachability of the parts the portal depends on, for /healthz."""

import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from apps.common.models import WorkerHeartbeat

# A worker that answered a heartbeat this recently counts as alive even if it is too busy to
# answer a broadcast ping right now.
HEARTBEAT_FRESHNESS = timedelta(seconds=90)
PING_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _timed(check) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"; the type names why
        return CheckResult(False, _elapsed_ms(started), f"{type(exc).__name__}: {exc}"[:300])
    return CheckResult(True, _elapsed_ms(started), detail or "")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def check_database() -> CheckResult:
    def probe() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return connection.vendor

    return _timed(probe)


def check_broker() -> CheckResult:
    from idp_portal.celery import app

    def probe() -> str:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            return conn.transport.driver_name

    return _timed(probe)


def check_worker() -> CheckResult:
    from idp_portal.celery import app

    def probe() -> str:
        replies = app.control.ping(timeout=PING_TIMEOUT_SECONDS, limit=1) or []
        if replies:
            return f"{len(replies)} worker(s) answered ping"
        recent = timezone.now() - HEARTBEAT_FRESHNESS
        beating = WorkerHeartbeat.objects.filter(seen_at__gte=recent).count()
        if beating:
            return f"{beating} worker(s) sent a heartbeat in the last {HEARTBEAT_FRESHNESS.seconds} s"
        raise RuntimeError("no worker answered a ping or sent a recent heartbeat")

    return _timed(probe)


CHECK_NAMES = ("database", "broker", "worker")


def run_health_checks(names: tuple[str, ...] = CHECK_NAMES) -> dict[str, CheckResult]:
    results: dict[str, CheckResult] = {}
    if "database" in names:
        results["database"] = check_database()
    broker = check_broker() if {"broker", "worker"} & set(names) else None
    if "broker" in names:
        results["broker"] = broker
    if "worker" in names:
        # Without a broker no worker can be reached; don't wait for the ping to time out.
        results["worker"] = check_worker() if broker.ok else CheckResult(False, 0.0, "broker unreachable")
    return results
