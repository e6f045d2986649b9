"""Audit log retention: old events deleted in batches, the boundary kept, the prune itself audited."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit import retention
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.audit.tasks import prune
from idp_portal.celery import app as celery_app

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _event(label: str, age: timedelta) -> AuditEvent:
    audit_record(actor=None, action="test.event", target_label=label)
    event = AuditEvent.objects.filter(target_label=label).get()
    AuditEvent.objects.filter(pk=event.pk).update(created=NOW - age)
    return event


def _labels() -> set[str]:
    return set(AuditEvent.objects.filter(action="test.event").values_list("target_label", flat=True))


def test_events_older_than_the_retention_go_and_the_boundary_stays():
    _event("old", timedelta(days=31))
    _event("just past", timedelta(days=30, microseconds=1))
    _event("exactly at the cutoff", timedelta(days=30))
    _event("recent", timedelta(days=1))

    result = retention.audit_prune(days=30, now=NOW)

    assert (result.deleted, result.complete, result.cutoff) == (2, True, NOW - timedelta(days=30))
    assert _labels() == {"exactly at the cutoff", "recent"}


def test_a_prune_deletes_in_batches_of_the_size_asked_one_statement_each():
    for n in range(7):
        _event(f"old {n}", timedelta(days=400 + n))
    _event("kept", timedelta(days=10))

    with CaptureQueriesContext(connection) as queries:
        result = retention.audit_prune(days=365, batch_size=3, now=NOW)

    assert (result.deleted, result.batches, result.complete) == (7, 3, True)
    deletes = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 3 + 3 + 1: the short batch tells the prune it has reached the end
    assert all("LIMIT 3" in sql for sql in deletes)  # a bounded set of ids, never the whole range at once
    assert _labels() == {"kept"}


def test_the_budget_stops_a_run_and_the_next_one_goes_on():
    for n in range(5):
        _event(f"old {n}", timedelta(days=100 + n))

    first = retention.audit_prune(days=30, batch_size=2, budget_seconds=0, now=NOW)
    assert (first.deleted, first.complete) == (2, False)
    second = retention.audit_prune(days=30, batch_size=2, budget_seconds=60, now=NOW)
    assert (second.deleted, second.complete) == (3, True)
    assert _labels() == set()


def test_the_rest_between_batches_ends_with_the_budget():
    for n in range(5):
        _event(f"old {n}", timedelta(days=100 + n))

    # A rest a million times the batch's duration would outlast any task: the budget cuts it short.
    first = retention.audit_prune(days=30, batch_size=2, budget_seconds=0.3, pause_ratio=1_000_000, now=NOW)
    assert (first.deleted, first.complete) == (2, False)
    second = retention.audit_prune(days=30, batch_size=2, budget_seconds=60, pause_ratio=0, now=NOW)
    assert (second.deleted, second.complete) == (3, True)


def test_a_prune_is_audited_as_a_system_event():
    _event("old", timedelta(days=90))

    retention.audit_prune(days=60, now=NOW)

    record = AuditEvent.objects.get(action=retention.PRUNE_ACTION)
    assert (record.actor, record.actor_label, record.target_label) == (None, "system", "audit log")
    assert record.after == {
        "deleted": 1,
        "older_than": (NOW - timedelta(days=60)).isoformat(),
        "retention_days": 60,
        "complete": True,
    }


def test_nothing_to_delete_records_nothing():
    _event("recent", timedelta(days=1))
    assert retention.audit_prune(days=30, now=NOW).deleted == 0
    assert not AuditEvent.objects.filter(action=retention.PRUNE_ACTION).exists()


def test_retention_off_keeps_everything(settings):
    settings.AUDIT_RETENTION_DAYS = 0
    _event("ancient", timedelta(days=3650))
    result = retention.audit_prune()
    assert (result.deleted, result.cutoff) == (0, None)
    assert _labels() == {"ancient"}


def test_the_hourly_task_prunes_with_the_settings(settings):
    settings.AUDIT_RETENTION_DAYS = 7
    _event("old", timedelta(days=8))
    _event("recent", timedelta(days=6))

    assert prune() == 1  # the task's body, as the worker runs it

    assert _labels() == {"recent"}
    schedule = celery_app.conf.beat_schedule["audit-prune"]
    assert (schedule["task"], schedule["schedule"]) == ("audit.prune", timedelta(hours=1))
