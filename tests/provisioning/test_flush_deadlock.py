"""A batch's outcomes survive a deadlock with another transaction: the flush that PostgreSQL aborts
writes them again, and the creates lock is released whatever happens.

Measured at 100,000 users: two workers' flushes deadlocked on the links of groups both re-send; the
aborted flush lost the links of 100 users already created in the app, and the creates lock it left
held made every later count of the app's users wait, so the rest of the sync looked up before each
create (three times slower). Here a real second session plays the other worker.
"""

import threading

import psycopg
import pytest
from django.db import OperationalError, connection

from apps.directory import services as directory
from apps.provisioning import batch, outcomes
from apps.provisioning.models import Delivery, ObjectType, OutboxEvent, RemoteObject, SyncStatus
from tests.conftest import _database_url_for_subprocess
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, remote, sync, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("only_this_process_provisions")]


def _someone_waits_for(holder: psycopg.Connection) -> bool:
    """Whether another session waits for a lock this session holds (the flush, whatever its pid)."""
    row = holder.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    ).fetchone()
    return bool(row)


def _other_worker(group_link: int, user_link: int, done: dict) -> None:
    """Hold the group's link, wait until the flush waits for it, then want the user's link."""
    try:
        _hold_then_want(group_link, user_link, done)
    except Exception as exc:  # noqa: BLE001 - reported by the test's assertion
        done["error"] = repr(exc)


def _hold_then_want(group_link: int, user_link: int, done: dict) -> None:
    with psycopg.connect(_database_url_for_subprocess()) as other:
        other.execute("SET deadlock_timeout = '60s'")  # the flush's session finds the deadlock first
        held = other.execute("SELECT id FROM provisioning_remoteobject WHERE id = %s FOR UPDATE", [group_link])
        assert held.fetchone(), "the group's link is not in this session's database"
        done["holding"] = True
        wait_until(lambda: _someone_waits_for(other), timeout=60, message="the flush to wait")
        other.execute("UPDATE provisioning_remoteobject SET label = label WHERE id = %s", [user_link])
        other.commit()
    done["committed"] = True


@pytest.fixture
def patient_deadlock_check():
    """PostgreSQL looks for a deadlock once, deadlock_timeout after a wait begins: 5 s for this
    session, long enough for the other session (on a busy CI machine) to want the user's link."""
    with connection.cursor() as cursor:
        cursor.execute("SET deadlock_timeout = '5s'")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET deadlock_timeout")


def _creates_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deadlocks: PostgreSQL")
@pytest.mark.parametrize("attempts", [outcomes.FLUSH_ATTEMPTS, 1])
def test_a_flush_that_loses_a_deadlock_writes_its_outcomes_again(
    downstream, monkeypatch, patient_deadlock_check, attempts
):
    monkeypatch.setattr(outcomes, "FLUSH_ATTEMPTS", attempts)
    connector = make_connector(downstream)
    early = UserFactory(username="early", email="early@example.com")
    group = GroupFactory(name="Engineers", members=[early])
    assign(connector, group=group)
    sync(connector)  # the group and its first member are in the app
    late = UserFactory(username="late", email="late@example.com")
    directory.group_add_members(actor=None, group=group, users=[late])
    group_link = remote(connector, group).pk
    user_link = remote(connector, late).pk
    # Only the user is claimed: its outcome, once linked, makes the group dirty.
    RemoteObject.objects.filter(pk=group_link).update(next_attempt_at="2999-01-01T00:00:00Z")
    done: dict = {}
    other = threading.Thread(target=_other_worker, args=(group_link, user_link, done))
    other.start()
    wait_until(lambda: done.get("holding"), timeout=10, message="the other session to hold the group")

    if attempts == 1:  # no second attempt: the batch fails, and nothing is left held or created twice
        with pytest.raises(OperationalError):
            batch.process_batch(connector.pk, deadline=float("inf"))
        other.join(timeout=90)
        assert _creates_locks_held() == 0
        assert remote(connector, late).remote_id == ""  # created in the app, not linked
        RemoteObject.objects.filter(pk=user_link).update(lease_owner="", lease_expires_at=None)  # as the sweep
        RemoteObject.objects.filter(pk=group_link).update(next_attempt_at=None)
        sync(connector)  # the app holds a user it has no link for: the retry looks it up first
        assert remote(connector, late).status == SyncStatus.SYNCED
        assert downstream.count("POST", "/Users") == 2
        return
    batch.process_batch(connector.pk, deadline=float("inf"))
    other.join(timeout=90)

    assert done.get("committed"), done
    link = remote(connector, late)
    assert link.status == SyncStatus.SYNCED and link.remote_id  # the outcome was written again
    assert downstream.count("POST", "/Users") == 2  # early, late: nothing sent twice
    assert Delivery.objects.filter(object_id=late.pk, method="POST").count() == 1
    assert not OutboxEvent.objects.filter(object_type=ObjectType.USER, object_id=late.pk, processed_at__isnull=True)
    assert OutboxEvent.objects.filter(object_type=ObjectType.GROUP, object_id=group.pk, reason="member.provisioned")
    assert _creates_locks_held() == 0
