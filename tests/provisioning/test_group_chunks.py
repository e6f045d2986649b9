"""Large groups: members go out in requests of at most the connector's `group_members_per_request`,
each request's members are recorded once the app acknowledged them (a failed chunk is retried
alone), and a change of one member is one small PATCH whatever the size of the group."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.directory import services as directory
from apps.provisioning import batch, groups
from apps.provisioning import services as provisioning_services
from apps.provisioning.client import TransientScimError
from apps.provisioning.models import Delivery, RemoteObject, SyncStatus
from apps.provisioning.run import ConnectorRun
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, make_due, pending, remote, run, sync

pytestmark = pytest.mark.django_db

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _users(count: int, prefix: str = "member") -> list:
    return [UserFactory(username=f"{prefix}{i:02d}", email=f"{prefix}{i:02d}@example.com") for i in range(count)]


def _remote_ids(connector, users) -> list[str]:
    """The app's ids of these users, in the order the engine sends members (sorted by directory id)."""
    links = {str(link.object_id): link.remote_id for link in RemoteObject.objects.filter(connector=connector)}
    return [links[str(user.pk)] for user in sorted(users, key=lambda user: str(user.pk))]


def _add(remote_ids: list[str]) -> dict:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": rid} for rid in sorted(remote_ids)]}],
    }


def _chunks_of_the_initial_push(downstream, connector, users, group_name: str, size: int):
    members = _remote_ids(connector, users)
    first, rest = members[:size], members[size:]
    post = downstream.calls("POST", "/Groups")
    assert len(post) == 1
    assert post[0].body == {
        "schemas": [GROUP_SCHEMA],
        "displayName": group_name,
        "members": [{"value": rid} for rid in sorted(first)],
    }
    return [rest[i : i + size] for i in range(0, len(rest), size)]


def test_a_group_larger_than_the_chunk_is_created_then_patched_in_chunks(downstream):
    connector = make_connector(downstream, group_members_per_request=3)
    users = _users(8)
    group = GroupFactory(name="Everyone", members=users)

    assign(connector, group=group)
    sync(connector)

    chunks = _chunks_of_the_initial_push(downstream, connector, users, "Everyone", 3)
    group_id = downstream.group("Everyone")["id"]
    assert [len(chunk) for chunk in chunks] == [3, 2]
    assert [r.body for r in downstream.calls("PATCH", f"/Groups/{group_id}")] == [_add(chunk) for chunk in chunks]
    assert downstream.member_names("Everyone") == {user.username for user in users}
    link = remote(connector, group)
    assert link.status == SyncStatus.SYNCED
    assert sorted(link.remote_members) == sorted(str(user.pk) for user in users)
    # Nothing more to send: a second pass is quiet.
    downstream.reset_log()
    provisioning_services.connector_sync(actor=None, connector=connector)
    sync(connector)
    assert downstream.writes() == []


def test_a_failed_chunk_is_retried_alone_and_done_chunks_are_not_resent(downstream, fast_retries):
    connector = make_connector(downstream, group_members_per_request=2)
    users = _users(7)
    group = GroupFactory(name="Everyone", members=users)
    patches_seen: list[int] = []

    def second_patch(request) -> bool:
        patches_seen.append(1)
        return len(patches_seen) == 2

    downstream.fail(503, method="PATCH", path="/Groups/{id}", match=second_patch)

    assign(connector, group=group)
    run(connector)  # users, the POST with 2 members, the first PATCH; the second PATCH answers 503

    link = remote(connector, group)
    assert link.status == SyncStatus.PENDING and "503" in link.last_error
    assert len(link.remote_members) == 4  # what the app acknowledged is recorded
    members = _remote_ids(connector, users)

    make_due(connector)
    sync(connector)

    chunks = _chunks_of_the_initial_push(downstream, connector, users, "Everyone", 2)
    group_id = downstream.group("Everyone")["id"]
    bodies = [r.body for r in downstream.calls("PATCH", f"/Groups/{group_id}")]
    # The failed chunk once more, then the rest: never the members of the POST or of the first PATCH.
    assert bodies == [_add(chunks[0]), _add(chunks[1]), _add(chunks[1]), _add(chunks[2])]
    assert [r.status for r in downstream.calls("PATCH", f"/Groups/{group_id}")] == [200, 503, 200, 200]
    assert downstream.member_names("Everyone") == {user.username for user in users}
    assert sorted(members) == sorted(m["value"] for m in downstream.group("Everyone")["members"])
    assert remote(connector, group).status == SyncStatus.SYNCED


def test_a_change_of_one_member_of_a_large_group_is_one_small_patch(downstream):
    connector = make_connector(downstream, group_members_per_request=3)
    users = _users(9)
    newcomer = UserFactory(username="newcomer", email="newcomer@example.com")
    group = GroupFactory(name="Everyone", members=users)
    assign(connector, group=group)
    sync(connector)
    group_id = remote(connector, group).remote_id
    downstream.reset_log()

    directory.group_add_members(actor=None, group=group, users=[newcomer])
    sync(connector)
    newcomer_id = remote(connector, newcomer).remote_id
    assert [(r.method, r.path) for r in downstream.writes()] == [("POST", "/Users"), ("PATCH", f"/Groups/{group_id}")]
    assert downstream.calls("PATCH")[0].body == _add([newcomer_id])
    downstream.reset_log()

    directory.group_remove_members(actor=None, group=group, users=[users[4]])
    sync(connector)
    leaver_id = remote(connector, users[4]).remote_id
    group_patches = [r.body for r in downstream.calls("PATCH", f"/Groups/{group_id}")]
    assert group_patches == [
        {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "remove", "path": f'members[value eq "{leaver_id}"]'}]}
    ]
    assert len(downstream.member_names("Everyone")) == 9


def test_put_connectors_patch_groups_larger_than_the_chunk(downstream):
    connector = make_connector(downstream, update_method="put", group_members_per_request=2)
    small_members = _users(2, prefix="small")
    large_members = _users(5, prefix="large")
    small = GroupFactory(name="Small", members=small_members[:1])
    large = GroupFactory(name="Large", members=large_members[:3])
    assign(connector, group=small)
    assign(connector, group=large)
    sync(connector)
    small_id, large_id = remote(connector, small).remote_id, remote(connector, large).remote_id
    downstream.reset_log()

    directory.group_add_members(actor=None, group=small, users=small_members[1:])
    directory.group_add_members(actor=None, group=large, users=large_members[3:])
    sync(connector)

    # Two members fit one request: the whole group is PUT. Five do not: only the delta goes, by PATCH.
    assert downstream.calls("PUT", f"/Groups/{small_id}")[0].body["members"] == [
        {"value": rid} for rid in sorted(_remote_ids(connector, small_members))
    ]
    assert downstream.calls("PUT", f"/Groups/{large_id}") == []
    assert [r.body for r in downstream.calls("PATCH", f"/Groups/{large_id}")] == [
        _add(_remote_ids(connector, large_members[3:]))
    ]
    assert len(downstream.member_names("Large")) == 5


def test_a_large_group_stops_between_chunks_when_the_task_is_out_of_time(downstream, monkeypatch):
    connector = make_connector(downstream, group_members_per_request=2)
    users = _users(6)
    group = GroupFactory(name="Everyone", members=users)
    assign(connector, group=group)
    monkeypatch.setattr(groups, "_out_of_time", lambda run: True)

    batch.process_batch(connector.pk, deadline=time.monotonic() + 60)

    group_id = downstream.group("Everyone")["id"]
    assert len(downstream.calls("POST", "/Groups")) == 1
    assert len(downstream.calls("PATCH", f"/Groups/{group_id}")) == 1  # the first request is always sent
    link = remote(connector, group)
    assert link.status == SyncStatus.PENDING and link.next_attempt_at is None and len(link.remote_members) == 4
    assert pending(connector) > 0

    monkeypatch.undo()
    sync(connector)
    chunks = _chunks_of_the_initial_push(downstream, connector, users, "Everyone", 2)
    assert [r.body for r in downstream.calls("PATCH", f"/Groups/{group_id}")] == [_add(chunk) for chunk in chunks]
    assert len(downstream.member_names("Everyone")) == 6


def _pass_stopped_at_patch(downstream, connector, group, nth: int) -> tuple[RemoteObject, list[str]]:
    """One pass over the group whose `nth` PATCH the app refuses, its outcome never written (as when
    the worker is killed there): the link as the requests before left it in the database, and the
    UPDATE statements of the pass."""
    patches: list[int] = []

    def nth_patch(request) -> bool:
        patches.append(1)
        return len(patches) == nth

    downstream.fail(503, method="PATCH", path="/Groups/{id}", match=nth_patch)
    with CaptureQueriesContext(connection) as queries, pytest.raises(TransientScimError):
        groups.reconcile_group(ConnectorRun(connector), remote(connector, group))
    return remote(connector, group), [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


def test_each_chunk_appends_its_members_to_the_recorded_ones(downstream):
    connector = make_connector(downstream, group_members_per_request=2)
    users = _users(9)
    for user in users:
        assign(connector, user=user)
    sync(connector)
    group = GroupFactory(name="Everyone", members=users)
    assign(connector, group=group)
    members = sorted(str(user.pk) for user in users)

    link, updates = _pass_stopped_at_patch(downstream, connector, group, 3)

    # The POST and two PATCHes of two members were acknowledged: exactly those, once each.
    assert link.remote_id == downstream.group("Everyone")["id"]
    assert sorted(link.remote_members) == members[:6]
    # Their log entries are written with each chunk, not held (bodies and all) until the pass ends.
    logged = Delivery.objects.filter(connector=connector, path__startswith="/Groups").order_by("id")
    assert [(entry.method, entry.status_code) for entry in logged] == [
        ("GET", 200),  # the app has no group of that name
        ("POST", 201),
        ("PATCH", 200),
        ("PATCH", 200),
    ]
    assert link.last_sent_hash
    # After the POST's members, each record names its own chunk only (the first PATCH's writes
    # them all: the link's row does not hold them yet).
    assert len(updates) == 3 and not any(member in updates[2] for member in members[:4])
    downstream.reset_log()
    sync(connector)
    remote_ids = _remote_ids(connector, users)
    assert downstream.calls("POST", "/Groups") == []
    assert [r.body for r in downstream.calls("PATCH", f"/Groups/{link.remote_id}")] == [
        _add(remote_ids[6:8]),
        _add(remote_ids[8:]),
    ]
    assert downstream.member_names("Everyone") == {user.username for user in users}
    assert sorted(remote(connector, group).remote_members) == members


def test_a_group_found_in_the_app_is_recorded_whole_then_chunk_by_chunk(downstream):
    connector = make_connector(downstream, group_members_per_request=2)
    users = sorted(_users(7), key=lambda user: str(user.pk))
    for user in users:
        assign(connector, user=user)
    sync(connector)
    held = remote(connector, users[3])
    found = downstream.seed_group("Everyone", [held.remote_id])
    group = GroupFactory(name="Everyone", members=users)
    assign(connector, group=group)

    link, updates = _pass_stopped_at_patch(downstream, connector, group, 3)

    # The member the app held, then two PATCHes: the first record writes the list, the next its chunk.
    members = [str(user.pk) for user in users]
    assert link.remote_id == found["id"]
    assert sorted(link.remote_members) == sorted([members[3], *members[:3], members[4]])
    assert len(updates) == 2 and members[3] not in updates[1]
    downstream.reset_log()
    sync(connector)
    assert [r.body for r in downstream.calls("PATCH", f"/Groups/{found['id']}")] == [
        _add(_remote_ids(connector, users[5:]))
    ]
    assert downstream.member_names("Everyone") == {user.username for user in users}


def test_each_chunk_removes_its_leavers_from_the_recorded_members(downstream):
    connector = make_connector(downstream, group_members_per_request=2)
    users = _users(7)
    for user in users:
        assign(connector, user=user)
    by_id = sorted(users, key=lambda user: str(user.pk))
    stayers, leavers, newcomers = by_id[:1], by_id[1:4], by_id[4:]
    group = GroupFactory(name="Everyone", members=stayers + leavers)
    assign(connector, group=group)
    sync(connector)
    group_id = remote(connector, group).remote_id
    directory.group_add_members(actor=None, group=group, users=newcomers)
    directory.group_remove_members(actor=None, group=group, users=leavers)

    # Adds go first: [newcomer 1, newcomer 2], [newcomer 3, leaver 1], then [leaver 2, leaver 3].
    link, updates = _pass_stopped_at_patch(downstream, connector, group, 3)

    recorded = sorted(str(user.pk) for user in stayers + leavers[1:] + newcomers)
    assert sorted(link.remote_members) == recorded and len(link.remote_members) == len(recorded)
    # Each record names its own chunk only, never the members the app held before.
    assert len(updates) == 2 and not any(str(stayers[0].pk) in sql for sql in updates)
    downstream.reset_log()
    sync(connector)
    leaver_ids = [remote(connector, user).remote_id for user in leavers[1:]]
    assert [r.body for r in downstream.calls("PATCH", f"/Groups/{group_id}")] == [
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "remove", "path": f'members[value eq "{rid}"]'} for rid in sorted(leaver_ids)],
        }
    ]
    assert downstream.member_names("Everyone") == {user.username for user in stayers + newcomers}
    assert sorted(remote(connector, group).remote_members) == sorted(str(user.pk) for user in stayers + newcomers)
