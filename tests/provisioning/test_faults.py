"""Faults, each one a test: lost answers, 409s, rapid changes around failures, long Retry-After,
mapping errors, exhausted retries and one broken connector among healthy ones."""

import time

import pytest
from django.utils import timezone

from apps.connectors import services as connector_services
from apps.connectors.models import MappingKind
from apps.directory import services as directory
from apps.provisioning import claims, tasks
from apps.provisioning.models import OutboxEvent, SyncStatus
from tests.factories import UserFactory
from tests.provisioning.helpers import assign, make_connector, make_due, pending, remote, run, sync

pytestmark = pytest.mark.django_db


def _user(name="alice", **extra):
    return UserFactory(username=name, email=f"{name}@example.com", **extra)


def _user_writes(downstream):
    return [r for r in downstream.writes() if r.path.startswith("/Users")]


def test_create_whose_answer_is_lost_is_linked_on_retry_not_duplicated(downstream):
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.lose_response(method="POST", path="/Users")

    run(connector)
    assert len(downstream.users) == 1  # the app made it, the portal never heard
    assert remote(connector, alice).status == SyncStatus.PENDING
    assert "Could not reach the app" in remote(connector, alice).last_error

    make_due(connector)
    sync(connector)

    assert len(downstream.users) == 1
    assert downstream.count("POST", "/Users") == 1
    state = remote(connector, alice)
    assert state.status == SyncStatus.SYNCED, state.last_error
    assert state.remote_id == downstream.user("alice")["id"]


def test_create_whose_answer_is_lost_then_409_on_retry_links_the_existing_user(downstream, fast_retries):
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.lose_response(method="POST", path="/Users")
    # The app's search index lags behind its writes: the retry's lookups (the app now holds a user
    # the portal has not linked) find nothing, so it creates again and gets 409; the lookup after
    # the 409 finds the user.
    downstream.stale_search(times=2)

    sync(connector)

    posts = downstream.calls("POST", "/Users")
    assert [p.status for p in posts] == [201, 409]
    assert len(downstream.users) == 1
    state = remote(connector, alice)
    assert state.status == SyncStatus.SYNCED, state.last_error
    assert state.remote_id == downstream.user("alice")["id"]
    # The link is followed by nothing but what differs (here: nothing).
    assert downstream.count("PATCH") == 0


def test_409_without_a_findable_user_is_a_failure_with_the_reason(downstream, fast_retries):
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.fail(409, method="POST", path="/Users", detail="uniqueness")

    sync(connector)

    state = remote(connector, alice)
    assert state.status == SyncStatus.FAILED
    assert "409" in state.last_error
    assert downstream.users == []


def test_rapid_changes_with_a_failure_in_the_middle_end_in_the_last_state(downstream):
    connector = make_connector(downstream)
    alice = _user(first_name="Alice", last_name="Liddell")
    assign(connector, user=alice)
    run(connector)  # create
    remote_id = remote(connector, alice).remote_id

    directory.user_update(actor=None, user=alice, username="alice.l")  # rename ...
    downstream.fail(503, method="PATCH", path="/Users/{id}")
    run(connector)  # ... fails
    assert remote(connector, alice).attempts == 1
    assert pending(connector) == 1
    directory.user_update(actor=None, user=alice, username="alice.liddell")  # rename again
    directory.user_suspend(actor=None, user=alice)  # deactivate
    run(connector)  # the retry is not due yet
    make_due(connector)
    sync(connector)

    final = downstream.user("alice.liddell")
    assert final["id"] == remote_id
    assert final["active"] is False
    assert len(downstream.users) == 1
    # What was sent, in order: create, the failed first rename, then straight to the last state.
    states = []
    for request in _user_writes(downstream):
        if request.method == "POST":
            states.append((request.status, request.body["userName"], request.body["active"]))
        else:
            ops = {op["path"]: op["value"] for op in request.body["Operations"]}
            states.append((request.status, ops.get("userName"), ops.get("active")))
    assert states == [(201, "alice", True), (503, "alice.l", None), (200, "alice.liddell", False)]
    assert remote(connector, alice).status == SyncStatus.SYNCED


@pytest.mark.parametrize("deprovision", ["delete", "deactivate"])
def test_update_delayed_by_429_then_delete_never_resurrects_the_user(downstream, deprovision):
    connector = make_connector(downstream, deprovision=deprovision)
    alice = _user(last_name="Liddell")
    assign(connector, user=alice)
    run(connector)
    remote_id = remote(connector, alice).remote_id
    downstream.reset_log()

    directory.user_update(actor=None, user=alice, last_name="Hargreaves")
    downstream.fail(429, method="PATCH", path="/Users/{id}", retry_after=1)
    run(connector)
    assert remote(connector, alice).next_attempt_at is not None
    directory.user_delete(actor=None, user=alice)
    make_due(connector)
    sync(connector)
    run(connector)

    writes = [(r.method, r.status) for r in _user_writes(downstream)]
    if deprovision == "delete":
        assert writes == [("PATCH", 429), ("DELETE", 204)]
        assert downstream.users == []
    else:
        assert writes == [("PATCH", 429), ("PATCH", 200)]
        assert downstream.calls("PATCH")[-1].body["Operations"] == [{"op": "replace", "path": "active", "value": False}]
        assert downstream.user("alice")["active"] is False
        assert downstream.user("alice")["name"]["familyName"] == "Liddell"  # the stale update never went
    assert downstream.count("POST") == 0
    assert downstream.calls(path=f"/Users/{remote_id}")[-1].method in {"DELETE", "PATCH"}


def test_retry_after_beyond_the_visibility_timeout_is_parked_in_the_database(
    downstream, settings, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued: list[dict] = []

    def record(args=None, kwargs=None, countdown=None, **options):
        enqueued.append({"args": args, "countdown": countdown})

    monkeypatch.setattr(tasks.process_connector, "apply_async", record)
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    assert visibility_timeout > settings.PROVISIONING_MAX_COUNTDOWN_SECONDS
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.fail(429, method="POST", path="/Users", retry_after=2 * visibility_timeout)

    with django_capture_on_commit_callbacks(execute=True):
        tasks.process_connector(str(connector.pk))

    state = remote(connector, alice)
    wait = (state.next_attempt_at - timezone.now()).total_seconds()
    assert 2 * visibility_timeout - 5 <= wait <= 2 * visibility_timeout
    assert enqueued == []  # no countdown at all, let alone one beyond the limit
    assert all((e["countdown"] or 0) <= settings.PROVISIONING_MAX_COUNTDOWN_SECONDS for e in enqueued)

    # Sweeps before it is due leave it parked.
    with django_capture_on_commit_callbacks(execute=True):
        assert claims.sweep() == 0
    assert enqueued == []

    # Time passes: the next sweep hands it to a worker, once.
    make_due(connector)
    with django_capture_on_commit_callbacks(execute=True):
        assert claims.sweep() == 1
    assert [e["args"] for e in enqueued] == [[str(connector.pk)]]
    assert enqueued[0]["countdown"] is None
    with django_capture_on_commit_callbacks(execute=True):
        tasks.process_connector(str(connector.pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert claims.sweep() == 0
        tasks.process_connector(str(connector.pk))

    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert [r.status for r in downstream.calls("POST", "/Users")] == [429, 201]
    assert len(enqueued) == 1


def test_short_retry_rides_on_a_countdown_within_the_limit(downstream, monkeypatch, settings):
    enqueued: list[dict] = []
    monkeypatch.setattr(
        tasks.process_connector, "apply_async", lambda args=None, countdown=None, **kw: enqueued.append(countdown)
    )
    connector = make_connector(downstream)
    assign(connector, user=_user())
    downstream.fail(429, method="POST", path="/Users", retry_after=5)

    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        tasks.process_connector(str(connector.pk))

    assert len(enqueued) == 1
    assert 4 <= enqueued[0] <= 5
    assert enqueued[0] <= settings.PROVISIONING_MAX_COUNTDOWN_SECONDS


def test_mapping_error_fails_that_object_and_the_others_go_on(downstream):
    connector = make_connector(downstream)
    connector_services.mappings_replace(
        actor=None,
        connector=connector,
        kind=MappingKind.SCIM_USER,
        rows=[{"source": "external_id", "target": "userName"}, {"source": "status", "target": "active"}],
    )
    alice = _user("alice")  # no external id: no userName
    bob = _user("bob", external_id="bob-hr-7")
    assign(connector, user=alice)
    assign(connector, user=bob)

    sync(connector)

    state = remote(connector, alice)
    assert state.status == SyncStatus.FAILED
    assert state.last_error.startswith("Mapping error:")
    assert "userName" in state.last_error
    assert remote(connector, bob).status == SyncStatus.SYNCED
    assert downstream.user("bob-hr-7") is not None
    assert pending(connector) == 0


def test_exhausted_retry_budget_fails_the_object_and_the_queue_goes_on(downstream, fast_retries):
    fast_retries.PROVISIONING_MAX_ATTEMPTS = 4
    connector = make_connector(downstream)
    alice, bob = _user("alice"), _user("bob")
    assign(connector, user=alice)
    assign(connector, user=bob)

    def about_alice(request) -> bool:
        return "alice" in str(request.query.get("filter", "")) or (request.body or {}).get("userName") == "alice"

    downstream.fail(500, times=1000, match=about_alice)

    sync(connector)

    state = remote(connector, alice)
    assert state.status == SyncStatus.FAILED
    assert state.last_error.startswith("Gave up after 4 attempts:")
    assert "HTTP 500" in state.last_error
    assert remote(connector, bob).status == SyncStatus.SYNCED
    alice_requests = [r for r in downstream.calls(path="/Users") if about_alice(r)]
    # Four tries, then it gave up: a create, then lookups first (the create may have happened).
    assert [(r.method, r.status) for r in alice_requests] == [("POST", 500)] + [("GET", 500)] * 3
    assert [r.status for r in downstream.calls("POST", "/Users") if r.body.get("userName") == "bob"] == [201]


def test_a_broken_connector_does_not_hold_up_the_others(downstream, request):
    from tests.provisioning.downstream import FaultyScimServer

    broken_app = FaultyScimServer().start()
    broken_app.stop()  # down
    request.addfinalizer(broken_app.close)
    healthy, broken = make_connector(downstream), make_connector(broken_app)
    users = [_user(f"user{i}") for i in range(3)]
    for user in users:
        assign(healthy, user=user)
        assign(broken, user=user)

    started = time.monotonic()
    run(broken)
    assert time.monotonic() - started < 2  # no waiting on the broken app: its retries are scheduled
    run(healthy)

    assert {u["userName"] for u in downstream.users} == {"user0", "user1", "user2"}
    assert all(remote(healthy, user).status == SyncStatus.SYNCED for user in users)
    assert all(remote(broken, user).status == SyncStatus.PENDING for user in users)
    assert all(remote(broken, user).next_attempt_at > timezone.now() for user in users)
    assert OutboxEvent.objects.filter(connector=broken, processed_at__isnull=True).count() == 3


def test_a_slow_app_is_waited_for_within_the_timeout(downstream):
    connector = make_connector(downstream)
    alice = _user()
    assign(connector, user=alice)
    downstream.delay(0.4, times=3)

    sync(connector)

    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert downstream.count() == 2  # the count of the app's users, then the create


def test_a_change_committed_while_the_worker_runs_is_not_marked_processed(downstream, monkeypatch):
    """The high-water mark: events recorded after the object was read stay pending for the next pass."""
    from apps.provisioning import users

    connector = make_connector(downstream)
    alice = _user(last_name="Liddell")
    assign(connector, user=alice)
    run(connector)
    directory.user_update(actor=None, user=alice, last_name="One")
    original = users._sync_user

    def sync_then_change(run_, remote_, user):
        original(run_, remote_, user)
        if user.last_name == "One":
            # Another admin's change commits between the send and the bookkeeping.
            directory.user_update(actor=None, user=user, last_name="Two")

    monkeypatch.setattr(users, "_sync_user", sync_then_change)
    downstream.reset_log()
    run(connector)

    # Had the pass marked the later event processed, "Two" would never have been sent.
    assert pending(connector) == 1
    run(connector)
    assert pending(connector) == 0
    names = [op["value"] for r in downstream.calls("PATCH") for op in r.body["Operations"] if op["path"] == "name"]
    assert [name["familyName"] for name in names] == ["One", "Two"]
    assert downstream.user("alice")["name"]["familyName"] == "Two"
