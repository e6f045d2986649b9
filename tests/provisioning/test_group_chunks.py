"""Large groups: members go out in requests of at most the connector's `group_members_per_request`,
each request's members are recorded once the app acknowledged them (a failed chunk is retried
alone), and a change of one member is one small PATCH whatever the size of the group."""

import time

import pytest

from apps.directory import services as directory
from apps.provisioning import batch, groups
from apps.provisioning import services as provisioning_services
from apps.provisioning.models import RemoteObject, SyncStatus
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
