import pytest
from django.test import Client

from apps.common import health

pytestmark = pytest.mark.django_db


def test_healthz_is_503_with_reasons_when_no_worker_answers(monkeypatch):
    monkeypatch.setattr(health, "PING_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(health, "HEARTBEAT_FRESHNESS", health.timedelta(seconds=0))
    # A queue nobody consumes and a control exchange nobody listens on: no worker can answer.
    monkeypatch.setattr("idp_portal.celery.app.control.ping", lambda **kwargs: [])

    response = Client().get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False
    assert "no worker" in body["checks"]["worker"]["detail"]


def test_healthz_reports_an_unreachable_broker(settings):
    from idp_portal.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = Client().get("/healthz")
    finally:
        app.conf.broker_url = original

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["ok"] is False
    assert checks["worker"] == {"ok": False, "latency_ms": 0.0, "detail": "broker unreachable"}


def test_healthz_only_answers_get():
    assert Client().post("/healthz").status_code == 405


def test_healthz_can_run_a_subset_of_checks():
    response = Client().get("/healthz?only=database")

    assert response.status_code == 200
    assert list(response.json()["checks"]) == ["database"]
