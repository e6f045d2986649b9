"""A broker outage never stops delivery: Redis stopped and restarted empty, twice, while a worker is busy.

Real processes throughout: a private redis-server (never the shared one), `celery worker` with beat
embedded (`-B`) or beside a `celery beat` process of its own, and the strict downstream app of
tests/provisioning/downstream.py, slowed down so that the worker is mid-delivery when Redis goes.
Changes keep coming while Redis is down; every one must arrive, and arrive once.
"""

import itertools
from collections import Counter

import pytest

from apps.directory import services as directory
from apps.provisioning.models import OutboxEvent
from tests.factories import UserFactory
from tests.provisioning.helpers import assign, make_connector, this_process_on_redis, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class ChangeStream:
    """Directory changes made one after another, as admins would: new users assigned to the
    connector and renames of the users already there. Each rename writes a name never used before,
    so a PATCH that carries it twice is a change delivered twice."""

    def __init__(self, connector) -> None:
        self.connector = connector
        self.users: list = []
        self.renames: Counter = Counter()
        self._numbers = itertools.count()

    def make(self, count: int) -> None:
        for _ in range(count):
            number = next(self._numbers)
            if number % 3 == 2:
                user = self.users[number % len(self.users)]
                directory.user_update(actor=None, user=user, last_name=f"Name{number:03d}")
                self.renames[user.username] += 1
            else:
                user = UserFactory(username=f"out{number:03d}", email=f"out{number:03d}@example.com", last_name="First")
                assign(self.connector, user=user)
                self.users.append(user)

    def expected(self) -> dict[str, str]:
        for user in self.users:
            user.refresh_from_db()
        return {user.username: user.last_name for user in self.users}


def _arrived(connector, downstream, changes: ChangeStream):
    def check() -> bool:
        if OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).exists():
            return False
        remote = {user["userName"]: user.get("name", {}).get("familyName", "") for user in downstream.users}
        return remote == changes.expected()

    return check


def _family_name(request) -> str | None:
    """The familyName a PATCH sets, whichever way the client spelled the operation."""
    for operation in (request.body or {}).get("Operations", []):
        path, value = operation.get("path", ""), operation.get("value")
        if path == "name.familyName":
            return value
        if isinstance(value, dict):
            if "name.familyName" in value:
                return value["name.familyName"]
            if isinstance(value.get("name"), dict) and "familyName" in value["name"]:
                return value["name"]["familyName"]
    return None


@pytest.mark.parametrize("beat", ["embedded", "own process"])
def test_redis_restarted_empty_twice_during_delivery_every_change_arrives_once(
    beat, downstream, provisioning_workers, private_redis, settings
):
    connector = make_connector(downstream)
    # A slow app: the worker is always in the middle of a request when Redis goes away.
    downstream.delay(0.15, times=10_000)
    changes = ChangeStream(connector)
    with this_process_on_redis(private_redis.url, settings):
        worker = provisioning_workers.start(redis_url=private_redis.url, beat=beat == "embedded", concurrency=2)
        processes = [worker]
        if beat == "own process":
            processes.append(provisioning_workers.start(redis_url=private_redis.url, beat_only=True))

        changes.make(6)
        wait_until(lambda: downstream.count("POST", "/Users") >= 1, message="the worker to be delivering")
        for outage in (1, 2):
            private_redis.stop()
            changes.make(6)  # made while the broker is down: their tasks cannot be enqueued
            wait_until(
                lambda outage=outage: worker.log().count("Connection to broker lost") >= outage,
                message=f"the worker to notice outage {outage}",
            )
            private_redis.start()  # empty: queued tasks, kick flags and beat's messages are gone
            changes.make(6)
            wait_until(
                lambda outage=outage: worker.log().count(" Connected to ") >= outage + 1,
                message=f"the worker to reconnect after outage {outage}",
            )
        wait_until(_arrived(connector, downstream, changes), timeout=90, message="every change to arrive")

    for process in processes:
        assert process.process.poll() is None, f"{process.log_path} exited:\n{process.log()[-3000:]}"
        assert "Unrecoverable error" not in process.log(), process.log()[-3000:]
    created = Counter(r.body["userName"] for r in downstream.calls("POST", "/Users") if r.status == 201)
    assert created == Counter({user.username: 1 for user in changes.users})
    id_to_name = {user["id"]: user["userName"] for user in downstream.users}
    patched = Counter(
        (id_to_name[r.path.split("/")[-1]], _family_name(r))
        for r in downstream.calls("PATCH", "/Users/{id}")
        if r.status in (200, 204) and _family_name(r) is not None
    )
    assert max(patched.values(), default=1) == 1, patched
    assert len(changes.users) == 20 and sum(changes.renames.values()) == 10
