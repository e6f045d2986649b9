"""Nothing is lost: a worker killed mid-delivery, Redis restarted or stopped, the app down for a while.

Real `celery worker` processes (beat embedded, so the sweep runs) on a queue of the test's own,
a real Redis (a private redis-server where the test stops or restarts it) and the downstream app of
tests/provisioning/downstream.py. Every wait is a wait_for on the state the test expects.
"""

import itertools
import re
import time
from collections import Counter

import pytest
from django.db import transaction

from apps.directory import services as directory
from apps.provisioning.models import OutboxEvent, RemoteObject, SyncStatus
from tests.factories import UserFactory
from tests.provisioning.helpers import assign, make_connector, this_process_on_redis, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _users(prefix, count):
    return [UserFactory(username=f"{prefix}{i:02d}", email=f"{prefix}{i:02d}@example.com") for i in range(count)]


def _created(downstream) -> Counter:
    """How many times each userName was created (successful POSTs)."""
    return Counter(r.body["userName"] for r in downstream.calls("POST", "/Users") if r.status == 201)


def _settled(connector) -> bool:
    return not OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).exists()


def _state(downstream) -> dict[str, tuple]:
    return {u["userName"]: (u["active"], u.get("name", {}).get("familyName", "")) for u in downstream.users}


def _expected(users) -> dict[str, tuple]:
    for user in users:
        user.refresh_from_db()
    return {u.username: (u.status == "active", u.last_name) for u in users}


def _converged(connector, downstream, users):
    def check():
        return _settled(connector) and _state(downstream) == _expected(users)

    return check


def test_worker_killed_mid_delivery_loses_nothing(downstream, provisioning_workers):
    connector = make_connector(downstream)
    users = _users("kill", 6)
    worker = provisioning_workers.start()
    # The app hangs on kill03's create (and never makes it): the worker dies while waiting.
    hangs = lambda r: r.body.get("userName") == "kill03"  # noqa: E731
    downstream.delay(20, method="POST", path="/Users", match=hangs)
    downstream.drop(method="POST", path="/Users", match=hangs)

    with transaction.atomic():
        for user in users:
            assign(connector, user=user)
    wait_until(lambda: any(hangs(r) for r in downstream.calls("POST", "/Users")), message="kill03's create to start")
    worker.kill()

    # Changes made while no worker runs wait in the outbox.
    late = _users("late", 2)
    with transaction.atomic():
        for user in late:
            assign(connector, user=user)
    directory.user_update(actor=None, user=users[0], last_name="Renamed")
    directory.user_suspend(actor=None, user=users[1])

    provisioning_workers.start()
    everyone = users + late
    wait_until(_converged(connector, downstream, everyone), timeout=60, message="the app to converge")

    assert _created(downstream) == Counter({user.username: 1 for user in everyone})
    assert _state(downstream)["kill00"] == (True, "Renamed")
    assert _state(downstream)["kill01"][0] is False
    assert set(RemoteObject.objects.filter(connector=connector).values_list("status", flat=True)) == {SyncStatus.SYNCED}


def test_app_down_for_a_while_then_everything_arrives(downstream, provisioning_workers, api_client):
    connector = make_connector(downstream)
    provisioning_workers.start()
    early = _users("early", 2)
    for user in early:
        assign(connector, user=user)
    wait_until(_converged(connector, downstream, early), message="the first users to arrive")

    downstream.stop()
    created = []
    for index in range(3):
        response = api_client.post(
            "/api/v1/users",
            {"username": f"down{index}", "email": f"down{index}@example.com", "last_name": "D"},
            format="json",
        )
        assert response.status_code == 201
        created.append(response.json()["id"])
        assert (
            api_client.post(
                f"/api/v1/connectors/{connector.pk}/assignments", {"user": response.json()["id"]}, format="json"
            ).status_code
            == 201
        )
    assert api_client.patch(f"/api/v1/users/{early[0].pk}", {"last_name": "Later"}, format="json").status_code == 200
    assert api_client.patch(f"/api/v1/users/{early[1].pk}", {"status": "suspended"}, format="json").status_code == 200
    # The worker keeps trying while the app is down.
    wait_until(
        lambda: RemoteObject.objects.filter(connector=connector, attempts__gte=2).exists(),
        message="retries against the app that is down",
    )
    assert "Could not reach the app" in RemoteObject.objects.filter(connector=connector, attempts__gte=2)[0].last_error

    downstream.start()
    users = early + [UserFactory._meta.model.objects.get(pk=pk) for pk in created]
    wait_until(_converged(connector, downstream, users), timeout=60, message="the app to converge")
    assert _created(downstream) == Counter({user.username: 1 for user in users})
    assert not RemoteObject.objects.filter(connector=connector, status=SyncStatus.FAILED).exists()


def test_redis_restart_loses_nothing(downstream, provisioning_workers, private_redis, settings):
    connector = make_connector(downstream)
    with this_process_on_redis(private_redis.url, settings):
        provisioning_workers.start(redis_url=private_redis.url)
        first = _users("first", 2)
        for user in first:
            assign(connector, user=user)
        wait_until(_converged(connector, downstream, first), message="the first users to arrive")

        # A slow app keeps the worker busy while more work is queued in Redis ...
        downstream.delay(1.0, times=4, method="POST", path="/Users")
        second = _users("second", 3)
        with transaction.atomic():
            for user in second:
                assign(connector, user=user)
        wait_until(lambda: downstream.count("POST", "/Users") >= 3, message="the worker to be busy")
        third = _users("third", 2)
        with transaction.atomic():
            for user in third:
                assign(connector, user=user)
            directory.user_update(actor=None, user=first[0], last_name="Changed")
        # ... then Redis crashes and comes back empty: queued tasks and kick flags are gone.
        private_redis.stop()
        private_redis.start()

        everyone = first + second + third
        wait_until(_converged(connector, downstream, everyone), timeout=60, message="the app to converge")

    assert _created(downstream) == Counter({user.username: 1 for user in everyone})
    assert _state(downstream)["first00"] == (True, "Changed")


def test_redis_stopped_admin_api_answers_fast_and_changes_arrive_later(
    downstream, provisioning_workers, private_redis, settings, api_client
):
    connector = make_connector(downstream)
    with this_process_on_redis(private_redis.url, settings):
        provisioning_workers.start(redis_url=private_redis.url)
        early = _users("early", 2)
        for user in early:
            assign(connector, user=user)
        wait_until(_converged(connector, downstream, early), message="the first users to arrive")

        private_redis.stop()
        timings = []

        def timed(call, *args, **kwargs):
            started = time.monotonic()
            response = call(*args, **kwargs)
            timings.append((args[0], time.monotonic() - started))
            assert response.status_code in (200, 201, 204), response.content
            return response

        created = timed(
            api_client.post, "/api/v1/users", {"username": "offline", "email": "o@example.com"}, format="json"
        ).json()
        timed(api_client.post, f"/api/v1/connectors/{connector.pk}/assignments", {"user": created["id"]}, format="json")
        timed(api_client.patch, f"/api/v1/users/{early[0].pk}", {"last_name": "Offline"}, format="json")
        timed(api_client.patch, f"/api/v1/users/{early[1].pk}", {"status": "suspended"}, format="json")
        assert all(seconds < 2 for _, seconds in timings), timings

        private_redis.start()
        users = [*early, UserFactory._meta.model.objects.get(pk=created["id"])]
        wait_until(_converged(connector, downstream, users), timeout=60, message="the app to converge")

    assert _created(downstream) == Counter({user.username: 1 for user in users})


def max_in_any_window(times: list[float], width: float = 1.0) -> int:
    """The most requests that fall in any `width`-second sliding window (t, t + width)."""
    ordered, most, first = sorted(times), 0, 0
    for last, end in enumerate(ordered):
        while end - ordered[first] >= width:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_rate_limit_is_shared_by_workers(downstream, provisioning_workers, private_redis, settings):
    """Two worker processes on one connector stay, together, under its requests-per-second limit, in
    every one-second window: an app that limits by a sliding window answers no 429."""
    limit = 8
    connector = make_connector(downstream, rate_limit=limit)
    downstream.limit_rate(limit, sliding=True)
    with this_process_on_redis(private_redis.url, settings):
        # Small batches: a full one makes the connector's task start a helper, so two processes send.
        provisioning_workers.start(
            redis_url=private_redis.url,
            concurrency=2,
            PROVISIONING_TASK_BUDGET_SECONDS="2",
            PROVISIONING_BATCH_SIZE="1",
        )
        first, second = _users("ra", 12), _users("rb", 12)
        with transaction.atomic():
            for user in first:
                assign(connector, user=user)
        wait_until(lambda: downstream.count() >= 2, message="the first task to start")
        with transaction.atomic():
            for user in second:
                assign(connector, user=user)
        wait_until(_converged(connector, downstream, first + second), timeout=60, message="the app to converge")

    requests = downstream.calls()
    assert not [r for r in requests if r.status == 429]
    assert max_in_any_window([r.received for r in requests]) <= limit
    # Both processes sent requests during the same seconds (the limit was shared, not merely unused).
    by_connection: dict[tuple, list[float]] = {}
    for request in requests:
        by_connection.setdefault(request.client, []).append(request.received)
    spans = sorted((min(times), max(times)) for times in by_connection.values())
    assert any(a_end > b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)), spans
    assert _created(downstream) == Counter({user.username: 1 for user in first + second})


def test_bearer_token_never_in_redis_or_worker_logs(downstream, provisioning_workers, private_redis, settings):
    connector = make_connector(downstream)
    token = downstream.token
    with this_process_on_redis(private_redis.url, settings):
        worker = provisioning_workers.start(redis_url=private_redis.url)
        downstream.fail(429, method="POST", path="/Users", retry_after=3)  # a countdown task waits in Redis
        users = _users("tok", 2)
        with transaction.atomic():
            for user in users:
                assign(connector, user=user)
        wait_until(lambda: downstream.count("POST", "/Users") >= 1, message="the 429")
        while_waiting = private_redis.dump()
        wait_until(_converged(connector, downstream, users), timeout=60, message="the app to converge")
        after = private_redis.dump()

    assert any(str(connector.pk).encode() in item for item in while_waiting)  # we looked at the right place
    assert not [item for item in while_waiting + after if token.encode() in item]
    log = worker.log()
    assert "provisioning.process_connector" in log
    assert token not in log
    assert {r.authorization for r in downstream.calls()} == {f"Bearer {token}"}


def test_a_burst_of_changes_is_handled_by_a_few_tasks(downstream, provisioning_workers, private_redis, settings):
    """While a connector's task runs, further changes wake it instead of queueing tasks of their own."""
    from apps.directory.models import Group

    connector = make_connector(downstream)
    group = Group.objects.create(name="Burst")
    first = _users("burst", 1)
    directory.group_add_members(actor=None, group=group, users=first)
    assign(connector, group=group)
    later = _users("late", 40)
    with this_process_on_redis(private_redis.url, settings):
        worker = provisioning_workers.start(redis_url=private_redis.url, PROVISIONING_TASK_BUDGET_SECONDS="30")
        wait_until(_converged(connector, downstream, first), message="the first member to arrive")
        for user in later:  # each its own transaction, as separate admin actions would be
            directory.group_add_members(actor=None, group=group, users=[user])
        wait_until(_converged(connector, downstream, first + later), timeout=60, message="the app to converge")

    assert downstream.member_names("Burst") == {user.username for user in first + later}
    received = re.findall(r"provisioning\.process_connector\[[0-9a-f-]+\] received", worker.log())
    # One task for the first member, then about one for the burst (a task may end in a pause).
    assert len(received) <= 4, worker.log()[-3000:]
