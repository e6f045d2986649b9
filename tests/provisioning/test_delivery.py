"""Delivery: retries with backoff, Retry-After, permanent failures, leases, idempotence, the rate limit."""

import time
from datetime import timedelta
from email.utils import format_datetime

import httpx2
import pytest
from django.utils import timezone

from apps.provisioning import claims, outcomes, tasks, waiting
from apps.provisioning import run as connector_run
from apps.provisioning.client import ScimClient
from apps.provisioning.models import SyncStatus
from tests.factories import UserFactory
from tests.provisioning.helpers import assign, deliveries, make_connector, make_due, pending, remote, run, sync

pytestmark = pytest.mark.django_db


def _user(name="alice", **extra):
    return UserFactory(username=name, email=f"{name}@example.com", **extra)


def _seconds_until(moment) -> float:
    return (moment - timezone.now()).total_seconds()


def test_5xx_is_retried_with_exponential_backoff_until_it_succeeds(downstream, settings):
    settings.PROVISIONING_RETRY_BASE_SECONDS = 2.0
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.fail(500, times=2, method="POST", path="/Users")

    run(connector)
    state = remote(connector, alice)
    assert state.status == SyncStatus.PENDING
    assert state.attempts == 1
    assert "HTTP 500" in state.last_error
    assert 1.5 <= _seconds_until(state.next_attempt_at) <= 2.1  # the first wait is the base
    assert pending(connector) == 1

    run(connector)  # not due yet: nothing is sent
    assert downstream.count("POST", "/Users") == 1

    make_due(connector)
    run(connector)
    state = remote(connector, alice)
    assert state.attempts == 2
    assert 1.5 <= _seconds_until(state.next_attempt_at) <= 4.1  # then up to twice as long, with jitter

    make_due(connector)
    run(connector)
    state = remote(connector, alice)
    assert state.status == SyncStatus.SYNCED
    assert state.attempts == 0
    assert state.next_attempt_at is None
    assert state.last_error == ""
    assert [d.status_code for d in deliveries(connector) if d.method == "POST"] == [500, 500, 201]
    assert len(downstream.users) == 1
    assert pending(connector) == 0


def test_backoff_grows_exponentially_and_is_capped(settings):
    settings.PROVISIONING_RETRY_BASE_SECONDS = 1.0
    settings.PROVISIONING_RETRY_MAX_SECONDS = 60
    for attempts in range(12):
        delays = [outcomes.backoff_seconds(attempts) for _ in range(200)]
        assert min(delays) >= 1.0
        assert max(delays) <= min(60, 2**attempts)
    assert max(outcomes.backoff_seconds(3) for _ in range(200)) > 4  # jitter spreads over the window


def test_connection_refused_is_retried(downstream):
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.stop()

    run(connector)
    state = remote(connector, alice)
    assert state.status == SyncStatus.PENDING, state.last_error
    assert "Could not reach the app" in state.last_error
    assert deliveries(connector)[0].status_code is None

    downstream.start()
    make_due(connector)
    sync(connector)
    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert downstream.user("alice") is not None


def test_timeout_is_retried(downstream, monkeypatch):
    def quick_client(connector_id, base_url, token):
        return ScimClient(base_url, token, timeout=httpx2.Timeout(0.3))

    monkeypatch.setattr(connector_run, "client_for", quick_client)
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    # The app makes the user but answers too late: the retry finds it instead of creating another.
    downstream.delay(1.0, method="POST", path="/Users")

    run(connector)
    state = remote(connector, alice)
    assert state.status == SyncStatus.PENDING
    assert "Timeout" in state.last_error

    make_due(connector)
    sync(connector)
    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert len(downstream.users) == 1


@pytest.mark.parametrize("header", ["seconds", "http-date"])
def test_429_waits_as_long_as_retry_after_says(downstream, header):
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    retry_after = "30" if header == "seconds" else format_datetime(timezone.now() + timedelta(seconds=30), usegmt=True)
    downstream.fail(429, method="POST", path="/Users", retry_after=retry_after)

    run(connector)
    state = remote(connector, alice)
    assert state.status == SyncStatus.PENDING
    assert 28 <= _seconds_until(state.next_attempt_at) <= 30.5
    assert "429" in state.last_error

    run(connector)
    assert downstream.count("POST", "/Users") == 1  # nothing before the app said

    make_due(connector)
    run(connector)
    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert downstream.count("POST", "/Users") == 2


def test_permanent_4xx_stops_that_object_shows_the_error_and_can_be_retried(downstream, api_client):
    connector = make_connector(downstream)
    alice, bob = _user("alice"), _user("bob")
    assign(connector, user=alice)
    assign(connector, user=bob)
    downstream.fail(
        400,
        method="POST",
        path="/Users",
        match=lambda r: r.body["userName"] == "alice",
        detail="userName alice is reserved",
    )

    sync(connector)

    state = remote(connector, alice)
    assert state.status == SyncStatus.FAILED
    assert "HTTP 400" in state.last_error
    assert "userName alice is reserved" in state.last_error
    assert remote(connector, bob).status == SyncStatus.SYNCED  # the queue went on
    assert downstream.count("POST", "/Users") == 2  # not retried

    body = api_client.get(f"/api/v1/connectors/{connector.pk}/provisioning", {"status": "failed"}).json()
    assert [(o["label"], o["status"]) for o in body["results"]] == [("alice", "failed")]
    assert "userName alice is reserved" in body["results"][0]["last_error"]
    assert body["counts"]["failed"] == 1
    failed_delivery = next(d for d in body["deliveries"] if d["status_code"] == 400)
    assert "userName alice is reserved" in failed_delivery["error"]

    response = api_client.post(f"/api/v1/connectors/{connector.pk}/retry")
    assert response.status_code == 202
    assert response.json() == {"queued_objects": 1}
    sync(connector)
    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert downstream.user("alice") is not None


@pytest.mark.parametrize("status", [401, 403, 404, 422])
def test_other_4xx_on_create_are_permanent(downstream, status):
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.fail(status, method="POST", path="/Users")

    sync(connector)

    assert remote(connector, alice).status == SyncStatus.FAILED
    assert f"HTTP {status}" in remote(connector, alice).last_error
    assert downstream.count("POST", "/Users") == 1


def test_running_twice_sends_nothing_more(downstream):
    connector = make_connector(downstream)
    for name in ("alice", "bob"):
        assign(connector, user=_user(name))
    sync(connector)
    sent = len(deliveries(connector))

    run(connector)
    tasks.process_connector(str(connector.pk))  # the Celery task body, run again in this process
    tasks.process_connector(str(connector.pk))

    assert len(deliveries(connector)) == sent
    assert len(downstream.users) == 2


def test_same_changes_recorded_twice_are_sent_once(downstream):
    """A duplicated task or a re-recorded event cannot send a change twice (level-triggered)."""
    from apps.provisioning.outbox import record_full_sync

    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    record_full_sync(connector, "sync")
    record_full_sync(connector, "sync")
    assert remote(connector, alice).waiting_events == 3  # the assignment's event and two syncs'

    sync(connector)

    assert downstream.count("POST", "/Users") == 1
    assert pending(connector) == 0
    # Settling the three events took three off the link's count, and the triggers none more.
    assert remote(connector, alice).waiting_events == 0
    assert waiting.repair() == 0


def test_several_changes_to_one_object_arrive_as_its_last_state(downstream):
    from apps.directory import services as directory

    connector = make_connector(downstream)
    alice = _user(first_name="Alice", last_name="L")
    assign(connector, user=alice)
    sync(connector)
    downstream.reset_log()

    directory.user_update(actor=None, user=alice, last_name="One")
    directory.user_update(actor=None, user=alice, last_name="Two")
    directory.user_update(actor=None, user=alice, first_name="Alicia")
    sync(connector)

    assert downstream.count("PATCH") == 1
    assert downstream.user("alice")["name"] == {"givenName": "Alicia", "familyName": "Two", "formatted": "Alicia Two"}


def test_an_object_leased_by_another_worker_is_left_alone_until_the_lease_expires(downstream):
    from apps.provisioning.models import RemoteObject

    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    RemoteObject.objects.filter(connector=connector).update(
        lease_owner="other-host:1", lease_expires_at=timezone.now() + timedelta(seconds=60)
    )

    run(connector)
    assert downstream.count() == 0
    assert pending(connector) == 1

    RemoteObject.objects.filter(connector=connector).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    run(connector)
    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert remote(connector, alice).lease_owner == ""


def test_rate_limit_per_connector_is_respected(downstream):
    connector = make_connector(downstream, rate_limit=10)
    # The portal counts a request in the second it leaves, the app in the second it arrives: one
    # request sent at x.999 may land in second x+1, so the app tolerates one more than the limit.
    downstream.limit_rate(11)
    for index in range(26):
        assign(connector, user=_user(f"user{index:02d}"))

    started = time.monotonic()
    sync(connector, timeout=20)

    assert len(downstream.users) == 26
    # One count of the app's users (it has none we do not know), then one create each; never a 429.
    assert downstream.count() == 1 + 26
    assert not [r for r in downstream.calls() if r.status == 429]
    per_second: dict[int, int] = {}
    for request in downstream.calls():
        per_second[int(request.received)] = per_second.get(int(request.received), 0) + 1
    assert max(per_second.values()) <= 11
    assert time.monotonic() - started >= 1.0  # 27 requests span three 1-second windows; unthrottled about 50 ms


def test_after_a_429_nothing_more_is_sent_to_the_app_before_retry_after(downstream):
    connector = make_connector(downstream)
    users = [_user(f"user{index}") for index in range(4)]
    for user in users:
        assign(connector, user=user)
    downstream.fail(429, retry_after=30)  # whatever the first request is

    run(connector)
    run(connector)

    assert downstream.count() == 1
    for user in users:
        assert 28 <= _seconds_until(remote(connector, user).next_attempt_at) <= 30.5


def test_a_429_defers_what_the_claims_read_not_every_pending_object(downstream, settings, monkeypatch):
    # A claim of one object reads at most 2 x claim_spread() events here: those objects wait for
    # Retry-After, so nothing more is sent, and the objects further back are not written.
    settings.PROVISIONING_BATCH_SIZE = 1
    monkeypatch.setattr(claims, "CANDIDATE_PAGES", 1)
    connector = make_connector(downstream)
    users = [_user(f"user{index:02d}") for index in range(12)]
    for user in users:
        assign(connector, user=user)
    downstream.fail(429, retry_after=30)

    run(connector)
    run(connector)

    assert downstream.count() == 1
    deferred = [remote(connector, user).next_attempt_at is not None for user in users]
    window = 2 * claims.claim_spread()
    assert deferred == [True] * window + [False] * (len(users) - window)


@pytest.mark.parametrize(
    ("status", "body", "conflict"),
    [
        (409, {"scimType": "uniqueness"}, True),
        (409, {}, True),
        (400, {"scimType": "uniqueness", "detail": "userName taken"}, True),  # some apps answer so
        (400, {"scimType": "invalidValue"}, False),
    ],
)
def test_uniqueness_errors_are_conflicts(status, body, conflict):
    from apps.provisioning.client import ConflictError, error_for_status

    assert isinstance(error_for_status(status, body, {}), ConflictError) is conflict


def test_a_task_asks_for_helpers_again_while_its_batches_stay_full(downstream, settings, monkeypatch):
    """A helper that found every due object locked ends at once; asking only after the first full
    batch left the rest of an initial sync to one worker (one bench run in two)."""
    from apps.provisioning import batch

    connector = make_connector(downstream)
    for name in ("alice", "bob", "carol", "dave"):
        assign(connector, user=_user(name))
    settings.PROVISIONING_BATCH_SIZE = 1
    asked: list[int] = []

    monkeypatch.setattr(batch, "HELP_AGAIN_SECONDS", 3600.0)
    batch.process_connector(connector.pk, budget_seconds=30, on_full_batch=lambda: asked.append(1))
    assert len(asked) == 1  # within the interval: once
    assert len(downstream.users) == 4

    for name in ("erin", "frank", "grace"):
        assign(connector, user=_user(name))
    asked.clear()
    monkeypatch.setattr(batch, "HELP_AGAIN_SECONDS", 0.0)
    batch.process_connector(connector.pk, budget_seconds=30, on_full_batch=lambda: asked.append(1))
    assert len(asked) == 3  # every full batch once the interval has passed
    assert len(downstream.users) == 7


def test_a_batchs_outcomes_are_one_statement_and_the_links_counter_stays_exact(downstream):
    """One UPDATE per object fired the links counter's trigger once per object (200 deltas a batch
    for the console's progress to add up); on PostgreSQL the outcomes are one UPDATE."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.provisioning.counts import link_counts, linked_user_count
    from apps.provisioning.models import RemoteObject

    connector = make_connector(downstream)
    users = [_user(f"counted{index}") for index in range(5)]
    for user in users:
        assign(connector, user=user)
    with CaptureQueriesContext(connection) as captured:
        run(connector)
    outcome_updates = [
        query["sql"] for query in captured.captured_queries
        if query["sql"].startswith('UPDATE "provisioning_remoteobject"') and "last_sent_hash" in query["sql"]
    ]  # fmt: skip
    if connection.vendor == "postgresql":
        assert len(outcome_updates) == 1 and "unnest(" in outcome_updates[0]
    assert all(remote(connector, user).status == SyncStatus.SYNCED for user in users)
    links = RemoteObject.objects.filter(connector=connector)
    assert linked_user_count(connector.pk) == links.exclude(remote_id="").count() == 5
    assert sum(link_counts([connector.pk])[connector.pk].values()) == links.count()
