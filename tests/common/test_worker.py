"""A real Celery worker process, on the configured broker (Redis in CI), reading the test database."""

import pytest
from django.test import Client

from apps.common.models import WorkerHeartbeat
from apps.common.tasks import record_worker_heartbeat
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_runs_task_that_writes_to_database(celery_worker_process):
    record_worker_heartbeat.apply_async(queue=celery_worker_process.queue)

    heartbeat = wait_for(
        lambda: WorkerHeartbeat.objects.filter(worker__startswith=celery_worker_process.queue).first(),
        timeout=60,
        message="the worker to record its heartbeat",
    )
    assert heartbeat.worker.startswith(f"{celery_worker_process.queue}-")


def test_healthz_reports_a_live_worker(celery_worker_process):
    def healthy():
        response = Client().get("/healthz")
        return response if response.status_code == 200 else None

    response = wait_for(healthy, timeout=60, message="/healthz to see the worker")
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "worker"}
    assert all(check["ok"] for check in body["checks"].values())
