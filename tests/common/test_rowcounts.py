"""Exact row counts kept by database triggers (apps.common.rowcounts): the directory's users and
groups, a connector's links per state. Each must equal a recount after every kind of write, on
PostgreSQL and on SQLite."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.common import rowcounts
from apps.common.models import RowCount
from apps.directory.models import Group, User
from apps.directory.selectors import group_total, user_total
from apps.provisioning.counts import link_counts
from apps.provisioning.models import OutboxEvent, RemoteObject, SyncStatus
from apps.provisioning.selectors import provisioning_state, remote_object_list
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import make_connector

pytestmark = pytest.mark.django_db


def _db_id(pk: uuid.UUID) -> object:
    return User._meta.pk.get_db_prep_value(pk, connection)


def _assert_users_exact() -> None:
    assert user_total() == User.objects.count()
    assert group_total() == Group.objects.count()


def test_users_and_groups_counted_through_creates_deletes_and_bulk_paths():
    _assert_users_exact()
    users = [UserFactory() for _ in range(3)]
    GroupFactory(name="One")
    _assert_users_exact()
    User.objects.bulk_create([User(username=f"bulk{n}", email=f"bulk{n}@example.com") for n in range(5)])
    _assert_users_exact()
    users[0].delete()
    User.objects.filter(username__startswith="bulk").delete()
    Group.objects.all().delete()
    _assert_users_exact()
    # A write the ORM never sees: INSERT ... SELECT.
    table = connection.ops.quote_name(User._meta.db_table)
    copied = [f.column for f in User._meta.concrete_fields if f.column not in ("id", "username", "email")]
    columns = ", ".join(connection.ops.quote_name(column) for column in copied)
    new_id = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, username, email, {columns}) "  # noqa: S608 - names from the model
            f"SELECT %s, 'copied', 'copied@example.com', {columns} FROM {table} WHERE id = %s",
            [_db_id(new_id), _db_id(users[1].pk)],
        )
    assert User.objects.filter(pk=new_id).exists()
    _assert_users_exact()


def test_a_rolled_back_write_is_not_counted():
    from django.db import transaction

    before = user_total()
    with pytest.raises(RuntimeError), transaction.atomic():
        UserFactory()
        raise RuntimeError
    assert user_total() == before == User.objects.count()


def test_deltas_fold_into_one_row_per_bucket_and_stay_exact(monkeypatch):
    from apps.common.tasks import compact_row_counts

    monkeypatch.setattr(rowcounts, "COMPACT_AFTER", 10)
    User.objects.bulk_create([User(username=f"one{n}", email=f"one{n}@example.com") for n in range(3)])
    for n in range(15):
        User.objects.create(username=f"row{n}", email=f"row{n}@example.com")
    assert RowCount.objects.filter(name="directory_users").count() > 15
    assert user_total() == User.objects.count()  # reads, then folds (no worker has)
    assert RowCount.objects.filter(name="directory_users").count() == 1
    for n in range(5):
        Group.objects.create(name=f"fold{n}")
    User.objects.filter(username__startswith="row").delete()
    compact_row_counts()  # the periodic task folds every counter
    assert RowCount.objects.filter(name="directory_users").count() == 1
    assert RowCount.objects.filter(name="directory_groups").count() == 1
    _assert_users_exact()


def test_a_recount_repairs_a_counter_that_drifted():
    UserFactory()
    RowCount.objects.create(name="directory_users", n=1000)
    assert user_total() != User.objects.count()
    rowcounts.recount_all()  # what every migrate does after making the triggers
    _assert_users_exact()


def test_a_recount_runs_with_statements_logged_as_debug_mode_logs_them():
    # DEBUG (the default of `make run`) formats each statement with its parameters: a literal % in
    # a counter's expression (SQLite's printf) broke every migrate there.
    UserFactory()
    with CaptureQueriesContext(connection):
        rowcounts.recount_all()
    _assert_users_exact()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_truncate_and_replica_mode_loads_keep_the_count():
    UserFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending FK checks
        cursor.execute("SET LOCAL session_replication_role = replica")  # as bench/scale_data.py loads
        cursor.execute("TRUNCATE directory_membership, directory_user CASCADE")
        UserFactory()
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    _assert_users_exact()


# --- A connector's links per state ---------------------------------------------------------------------


def _state_matches_lists(connector) -> None:
    state = provisioning_state(connector)
    listed = {key: remote_object_list(connector, status=key).count() for key in ("in_app", "deactivated")}
    assert (state.in_app, state.deactivated) == (listed["in_app"], listed["deactivated"])
    assert state.failed == remote_object_list(connector, status=SyncStatus.FAILED).count()
    assert state.held == remote_object_list(connector, status=SyncStatus.HELD).count()
    assert state.not_sent == remote_object_list(connector, status=SyncStatus.SKIPPED).count()
    assert state.objects == RemoteObject.objects.filter(connector=connector).count()


def test_link_counts_follow_creates_status_changes_and_deletes():
    connector = make_connector(None, base_url="http://127.0.0.1:9/scim/v2", token="t")
    other = make_connector(None, base_url="http://127.0.0.1:9/other/scim/v2", token="t")
    links = RemoteObject.objects.bulk_create(
        [RemoteObject(connector=connector, object_type="user", object_id=uuid.uuid4()) for _ in range(6)]
    )
    RemoteObject.objects.create(connector=other, object_type="user", object_id=uuid.uuid4())
    _state_matches_lists(connector)
    assert provisioning_state(connector).objects == 6
    RemoteObject.objects.filter(pk__in=[link.pk for link in links[:3]]).update(
        status=SyncStatus.SYNCED, last_sent={"active": True}
    )
    links[3].status, links[3].last_sent = SyncStatus.SYNCED, {"active": False}
    links[3].save()
    RemoteObject.objects.filter(pk=links[4].pk).update(status=SyncStatus.FAILED)
    _state_matches_lists(connector)
    state = provisioning_state(connector)
    assert (state.in_app, state.deactivated, state.failed) == (3, 1, 1)
    # Told active again: moves from deactivated to in the app.
    RemoteObject.objects.filter(pk=links[3].pk).update(last_sent={"active": True, "userName": "x"})
    RemoteObject.objects.filter(pk=links[0].pk).update(status=SyncStatus.DEPROVISIONED)
    RemoteObject.objects.filter(pk=links[5].pk).delete()
    _state_matches_lists(connector)
    state = provisioning_state(connector)
    assert (state.in_app, state.deactivated, state.failed, state.objects) == (3, 1, 1, 5)
    assert provisioning_state(other).objects == 1
    rowcounts.recount_all()  # a recount agrees with what the triggers kept
    assert provisioning_state(connector) == state
    connector.delete()
    assert link_counts([connector.pk]) == {connector.pk: {}}


# --- Seeking a position in primary-key order ------------------------------------------------------------


def test_seek_finds_every_position_the_offset_finds(monkeypatch):
    from apps.directory.selectors import user_seek

    User.objects.bulk_create([User(username=f"s{n:02d}", email=f"s{n}@example.com") for n in range(23)])
    monkeypatch.setattr(rowcounts, "RANK_STEP", 4)
    rowcounts.recount_all()  # ranges of 4 users
    assert RowCount.objects.filter(name="directory_users").count() >= 5
    # Written after the recount: counted in the ranges the triggers pick.
    User.objects.bulk_create([User(username=f"t{n:02d}", email=f"t{n}@example.com") for n in range(9)])
    User.objects.filter(username__in=["s03", "s11", "t04"]).delete()
    ordered = list(User.objects.order_by("pk").values_list("pk", flat=True))
    for position in range(len(ordered)):
        start, skip = user_seek(position)
        keys = User.objects.order_by("pk").values_list("pk", flat=True)
        if start is not None:
            keys = keys.filter(pk__gte=start)
        assert list(keys[skip : skip + 3]) == ordered[position : position + 3]
    assert user_seek(len(ordered)) is None


def test_a_deep_scim_page_is_the_page_an_offset_gives(client, monkeypatch):
    from apps.scim_server import resources
    from apps.scim_server.services import scim_token_create

    User.objects.bulk_create([User(username=f"p{n:02d}", email=f"p{n}@example.com") for n in range(30)])
    monkeypatch.setattr(rowcounts, "RANK_STEP", 4)
    monkeypatch.setattr(resources, "SEEK_FROM", 1)
    rowcounts.recount_all()
    _, secret = scim_token_create(actor=None, name="pages")
    ordered = [str(pk) for pk in User.objects.order_by("pk").values_list("pk", flat=True)]
    for start in (1, 2, 7, 13, 29, 30, 31, 40):
        response = client.get(
            "/scim/v2/Users", {"startIndex": start, "count": 5}, HTTP_AUTHORIZATION=f"Bearer {secret}"
        )
        body = response.json()
        assert body["totalResults"] == len(ordered)
        assert [user["id"] for user in body["Resources"]] == ordered[start - 1 : start + 4]


def _waiting_by_the_outbox(connector) -> int:
    """The definition the links' waiting_events stands for: pending, or with an unprocessed event."""
    pending = set(
        RemoteObject.objects.filter(connector=connector, status=SyncStatus.PENDING).values_list("object_id", flat=True)
    )
    events = set(
        OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).values_list("object_id", flat=True)
    )
    return len(pending | events)


def test_waiting_follows_the_outbox_as_events_are_recorded_settled_and_deleted():
    from django.utils import timezone

    from apps.provisioning import waiting
    from apps.provisioning.outbox import record_events

    connector = make_connector(None, base_url="http://127.0.0.1:9/scim/v2", token="t")
    users = [UserFactory() for _ in range(5)]
    record_events(connector, "user", [user.pk for user in users], "test")
    record_events(connector, "user", [users[0].pk, users[1].pk], "again")  # two events for one object
    RemoteObject.objects.filter(connector=connector).update(status=SyncStatus.SYNCED, last_sent={"active": True})

    def check(expected: int) -> None:
        state = provisioning_state(connector)
        assert state.waiting == remote_object_list(connector, status="waiting").count() == expected
        assert state.waiting == _waiting_by_the_outbox(connector)
        assert waiting.repair() == 0  # the triggers left nothing to correct

    check(5)
    first = OutboxEvent.objects.filter(connector=connector, object_id=users[0].pk).order_by("id")
    OutboxEvent.objects.filter(pk=first[0].pk).update(processed_at=timezone.now())
    check(5)  # its second event still waits
    OutboxEvent.objects.filter(object_id__in=[users[0].pk, users[2].pk]).update(processed_at=timezone.now())
    check(3)
    OutboxEvent.objects.filter(object_id=users[3].pk).delete()
    check(2)
    OutboxEvent.objects.filter(object_id=users[2].pk).update(processed_at=None)  # a retry sets it again
    RemoteObject.objects.filter(object_id=users[0].pk).update(status=SyncStatus.PENDING)
    check(4)
    RemoteObject.objects.filter(pk=RemoteObject.objects.get(object_id=users[1].pk).pk).update(waiting_events=7)
    assert waiting.repair() == 1
    check(4)


def test_a_full_sync_counts_the_events_it_records_once_on_new_and_existing_links():
    """A full sync writes its links' waiting counts itself (outbox.record_events_for): new links,
    links that already wait, and a change recorded after it in the same transaction all agree with
    the outbox."""
    from django.db import transaction
    from django.utils import timezone

    from apps.provisioning import waiting
    from apps.provisioning.outbox import record_events, record_full_sync
    from tests.provisioning.helpers import assign

    connector = make_connector(None, base_url="http://127.0.0.1:9/scim/v2", token="t")
    members = [UserFactory() for _ in range(4)]
    assign(connector, group=GroupFactory(name="Everyone", members=members))  # links, one event each
    OutboxEvent.objects.filter(object_id=members[1].pk).update(processed_at=timezone.now())  # linked, settled
    OutboxEvent.objects.filter(object_id__in=[members[2].pk, members[3].pk]).delete()
    RemoteObject.objects.filter(object_id__in=[members[2].pk, members[3].pk]).delete()  # not linked yet
    RemoteObject.objects.filter(connector=connector).update(status=SyncStatus.SYNCED, last_sent={"active": True})

    def waiting_counts() -> dict:
        return dict(RemoteObject.objects.filter(connector=connector).values_list("object_id", "waiting_events"))

    with transaction.atomic():
        assert record_full_sync(connector) == 5  # four users, one group
        record_events(connector, "user", [members[1].pk], "after")  # counted by the trigger again
    counts = waiting_counts()
    assert counts[members[0].pk] == 2 and counts[members[1].pk] == 2  # one waited before; one changed after
    assert counts[members[2].pk] == counts[members[3].pk] == 1  # new links
    assert waiting.repair() == 0
    state = provisioning_state(connector)
    assert state.waiting == _waiting_by_the_outbox(connector) == 5

    record_full_sync(connector)  # again, every link there
    assert waiting.repair() == 0
    unprocessed = OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True)
    assert sum(waiting_counts().values()) == unprocessed.count() == 13


def test_a_whole_counted_table_is_not_counted_again_but_anything_narrower_is():
    from django.db.models import Prefetch

    from apps.common.paging import CountedPaginator, known_count

    users = [UserFactory() for _ in range(4)]
    GroupFactory(name="Both", members=users[:2])
    total = User.objects.count()
    assert known_count(User.objects.all()) == total
    assert known_count(User.objects.select_related("manager").order_by("username")) == total
    assert known_count(User.objects.prefetch_related(Prefetch("groups"))) == total
    assert known_count(User.objects.filter(status="active")) is None
    assert known_count(User.objects.order_by("memberships__group__name")) is None  # repeats users
    assert known_count(User.objects.all()[:2]) is None
    assert known_count(Group.objects.all()) == Group.objects.count()
    assert known_count(RemoteObject.objects.all()) is None  # counted per connector, not as a whole
    with CaptureQueriesContext(connection) as queries:
        assert CountedPaginator(User.objects.order_by("username"), 2).count == total
    assert not any('FROM "directory_user"' in query["sql"] for query in queries)
