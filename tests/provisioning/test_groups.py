"""Groups on a connector: pushed with their provisioned members, renamed and changed by PATCH deltas."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.directory import services as directory
from apps.provisioning import batch
from apps.provisioning.models import ObjectType, OutboxEvent, RemoteObject, SyncStatus
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, remote, sync, unassign

pytestmark = pytest.mark.django_db

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _users(*names):
    return [UserFactory(username=name, email=f"{name}@example.com") for name in names]


def _group_patches(downstream, remote_id):
    return [request.body["Operations"] for request in downstream.calls("PATCH", f"/Groups/{remote_id}")]


def _assert_no_full_member_list(downstream):
    for request in downstream.calls(path="/Groups/{id}"):
        assert request.method in {"PATCH", "DELETE"}, f"{request.method} {request.path} sends the whole group"
        for operation in (request.body or {}).get("Operations", []):
            assert not (operation["op"] == "replace" and operation.get("path", "") == "members")
            assert operation.get("path") or "members" not in (operation.get("value") or {})


def test_assigned_group_is_created_with_its_display_name_and_members(downstream):
    connector = make_connector(downstream)
    alice, bob = _users("alice", "bob")
    group = GroupFactory(name="Engineering", members=[alice, bob])

    assign(connector, group=group)
    sync(connector)

    methods = [(r.method, r.path) for r in downstream.writes()]
    assert methods == [("POST", "/Users"), ("POST", "/Users"), ("POST", "/Groups")]  # members exist first
    remote_ids = sorted([remote(connector, alice).remote_id, remote(connector, bob).remote_id])
    assert downstream.calls("POST", "/Groups")[0].body == {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Engineering",
        "members": [{"value": remote_ids[0]}, {"value": remote_ids[1]}],
    }
    assert downstream.member_names("Engineering") == {"alice", "bob"}
    state = remote(connector, group)
    assert state.status == SyncStatus.SYNCED
    assert state.remote_id == downstream.group("Engineering")["id"]
    assert sorted(state.remote_members) == sorted([str(alice.pk), str(bob.pk)])


def test_rename_is_a_patch_of_the_display_name(downstream):
    connector = make_connector(downstream)
    (alice,) = _users("alice")
    group = GroupFactory(name="Engineering", members=[alice])
    assign(connector, group=group)
    sync(connector)
    group_id = remote(connector, group).remote_id
    downstream.reset_log()

    directory.group_update(actor=None, group=group, name="R&D")
    sync(connector)

    assert [(r.method, r.path) for r in downstream.writes()] == [("PATCH", f"/Groups/{group_id}")]
    assert downstream.calls("PATCH")[0].body == {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "displayName", "value": "R&D"}],
    }
    assert downstream.group("R&D")["id"] == group_id
    assert downstream.group("Engineering") is None


def test_every_membership_change_is_a_patch_add_or_remove_never_the_member_list(downstream):
    connector = make_connector(downstream)
    alice, bob, carol, dave = _users("alice", "bob", "carol", "dave")
    group = GroupFactory(name="Engineering", members=[alice, bob])
    assign(connector, group=group)
    sync(connector)
    group_id = remote(connector, group).remote_id
    downstream.reset_log()

    directory.group_add_members(actor=None, group=group, users=[carol])
    sync(connector)
    carol_id = remote(connector, carol).remote_id
    assert _group_patches(downstream, group_id) == [[{"op": "add", "path": "members", "value": [{"value": carol_id}]}]]

    directory.group_remove_members(actor=None, group=group, users=[bob])
    sync(connector)
    bob_id = remote(connector, bob).remote_id
    assert _group_patches(downstream, group_id)[-1] == [{"op": "remove", "path": f'members[value eq "{bob_id}"]'}]
    assert downstream.user("bob")["active"] is False  # bob had no other assignment

    # Two changes in one directory operation are still two deltas, not a member list.
    directory.group_set_members(actor=None, group=group, users=[alice, dave])
    sync(connector)
    dave_id = remote(connector, dave).remote_id
    assert _group_patches(downstream, group_id)[-1] == [
        {"op": "add", "path": "members", "value": [{"value": dave_id}]},
        {"op": "remove", "path": f'members[value eq "{carol_id}"]'},
    ]

    assert downstream.member_names("Engineering") == {"alice", "dave"}
    assert downstream.count("POST", "/Groups") == 0
    _assert_no_full_member_list(downstream)


def test_rename_and_member_change_together_are_one_patch_of_deltas(downstream):
    connector = make_connector(downstream)
    alice, bob = _users("alice", "bob")
    group = GroupFactory(name="Engineering", members=[alice])
    assign(connector, group=group)
    sync(connector)
    group_id = remote(connector, group).remote_id

    directory.group_update(actor=None, group=group, name="Platform")
    directory.group_add_members(actor=None, group=group, users=[bob])
    sync(connector)

    bob_id = remote(connector, bob).remote_id
    assert _group_patches(downstream, group_id) == [
        [
            {"op": "replace", "path": "displayName", "value": "Platform"},
            {"op": "add", "path": "members", "value": [{"value": bob_id}]},
        ]
    ]
    assert downstream.member_names("Platform") == {"alice", "bob"}


def test_members_not_provisioned_to_the_connector_are_left_out(downstream):
    connector = make_connector(downstream)
    alice, bob, carol = _users("alice", "bob", "carol")
    # The app refuses carol (a permanent error): she is not provisioned, so the group cannot name her.
    downstream.fail(
        400, method="POST", path="/Users", match=lambda r: r.body.get("userName") == "carol", detail="domain blocked"
    )
    group = GroupFactory(name="Engineering", members=[alice, bob, carol])
    assign(connector, group=group)

    sync(connector)

    assert remote(connector, carol).status == SyncStatus.FAILED
    sent = downstream.calls("POST", "/Groups")[0].body["members"]
    provisioned = [remote(connector, alice).remote_id, remote(connector, bob).remote_id]
    assert sorted(m["value"] for m in sent) == sorted(provisioned)
    assert downstream.member_names("Engineering") == {"alice", "bob"}
    assert remote(connector, group).status == SyncStatus.SYNCED


def test_member_provisioned_later_is_added_to_the_group(downstream, api_client):
    connector = make_connector(downstream)
    alice, carol = _users("alice", "carol")
    downstream.fail(400, method="POST", path="/Users", match=lambda r: r.body.get("userName") == "carol")
    group = GroupFactory(name="Engineering", members=[alice, carol])
    assign(connector, group=group)
    sync(connector)
    assert downstream.member_names("Engineering") == {"alice"}

    assert api_client.post(f"/api/v1/connectors/{connector.pk}/retry").status_code == 202
    sync(connector)

    assert remote(connector, carol).status == SyncStatus.SYNCED
    assert downstream.member_names("Engineering") == {"alice", "carol"}
    carol_id = remote(connector, carol).remote_id
    group_id = remote(connector, group).remote_id
    assert _group_patches(downstream, group_id) == [[{"op": "add", "path": "members", "value": [{"value": carol_id}]}]]


def test_empty_group_is_not_created_until_it_has_a_member(downstream):
    connector = make_connector(downstream)
    group = GroupFactory(name="Empty")
    assign(connector, group=group)
    sync(connector)

    assert downstream.count("POST", "/Groups") == 0
    assert downstream.groups == []
    assert remote(connector, group).status == SyncStatus.SKIPPED

    (alice,) = _users("alice")
    directory.group_add_members(actor=None, group=group, users=[alice])
    sync(connector)

    assert downstream.count("POST", "/Groups") == 1
    assert downstream.member_names("Empty") == {"alice"}


def test_existing_remote_group_with_the_same_display_name_is_adopted(downstream):
    existing = downstream.seed_group("engineering")  # the app compares displayName case-insensitively
    connector = make_connector(downstream)
    alice, bob = _users("alice", "bob")
    group = GroupFactory(name="Engineering", members=[alice, bob])
    assign(connector, group=group)

    sync(connector)

    assert downstream.count("POST", "/Groups") == 0
    assert len(downstream.groups) == 1
    assert remote(connector, group).remote_id == existing["id"]
    assert downstream.group("Engineering")["id"] == existing["id"]
    assert downstream.member_names("Engineering") == {"alice", "bob"}
    assert remote(connector, group).status == SyncStatus.SYNCED


def test_unassigning_a_group_deprovisions_only_members_without_another_assignment(downstream):
    connector = make_connector(downstream)
    alice, bob, carol = _users("alice", "bob", "carol")
    group = GroupFactory(name="Engineering", members=[alice, bob])
    other = GroupFactory(name="Support", members=[carol])
    GroupFactory(name="Everyone", members=[carol])
    directory.group_add_members(actor=None, group=other, users=[alice])
    assign(connector, group=group)
    assign(connector, user=bob)  # bob is also assigned directly
    assign(connector, group=other)  # alice is also in another assigned group
    directory.group_add_members(actor=None, group=group, users=[carol])  # carol only through the two groups
    sync(connector)
    downstream.reset_log()

    directory.group_remove_members(actor=None, group=other, users=[carol])
    unassign(connector, group=group)
    sync(connector)

    deactivated = {
        request.path
        for request in downstream.calls("PATCH", "/Users/{id}")
        if request.body["Operations"] == [{"op": "replace", "path": "active", "value": False}]
    }
    assert deactivated == {f"/Users/{remote(connector, carol).remote_id}"}
    assert downstream.user("alice")["active"] is True
    assert downstream.user("bob")["active"] is True
    assert downstream.user("carol")["active"] is False
    assert remote(connector, carol).status == SyncStatus.DEPROVISIONED
    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert remote(connector, bob).status == SyncStatus.SYNCED


def test_deleting_a_group_deletes_it_downstream(downstream):
    connector = make_connector(downstream)
    alice, bob = _users("alice", "bob")
    group = GroupFactory(name="Engineering", members=[alice, bob])
    assign(connector, group=group)
    assign(connector, user=bob)
    sync(connector)
    group_id, group_pk = remote(connector, group).remote_id, group.pk
    downstream.reset_log()

    directory.group_delete(actor=None, group=group)
    sync(connector)

    assert downstream.calls("DELETE", f"/Groups/{group_id}")
    assert downstream.groups == []
    assert downstream.user("alice")["active"] is False  # only had access through the group
    assert downstream.user("bob")["active"] is True
    state = RemoteObject.objects.get(connector=connector, object_id=group_pk)
    assert state.status == SyncStatus.DEPROVISIONED
    assert state.remote_id == ""


def test_deleted_user_is_removed_from_its_groups_downstream(downstream):
    connector = make_connector(downstream)
    alice, bob = _users("alice", "bob")
    group = GroupFactory(name="Engineering", members=[alice, bob])
    assign(connector, group=group)
    sync(connector)
    alice_id, group_id = remote(connector, alice).remote_id, remote(connector, group).remote_id

    directory.user_delete(actor=None, user=alice)
    sync(connector)

    assert [{"op": "remove", "path": f'members[value eq "{alice_id}"]'}] in _group_patches(downstream, group_id)
    assert downstream.member_names("Engineering") == {"bob"}
    assert downstream.user("alice")["active"] is False


def test_groups_are_not_pushed_when_the_connector_does_not_push_groups(downstream):
    connector = make_connector(downstream, operations=["create_users", "update_users", "deactivate_users"])
    (alice,) = _users("alice")
    group = GroupFactory(name="Engineering", members=[alice])
    assign(connector, group=group)

    sync(connector)

    assert downstream.user("alice") is not None
    assert downstream.count(path="/Groups") == 0
    assert remote(connector, group).status == SyncStatus.SKIPPED


def test_a_group_waiting_for_its_pass_gets_no_event_per_batch_of_its_members(downstream, settings):
    # One user per batch: each provisioned member would record an event for the group, which
    # already waits for a pass that reads its members after them.
    settings.PROVISIONING_BATCH_SIZE = 1
    connector = make_connector(downstream)
    members = _users("m1", "m2", "m3", "m4")
    group = GroupFactory(name="Waiting", members=members)
    assign(connector, group=group)

    sync(connector)

    group_events = OutboxEvent.objects.filter(connector=connector, object_type=ObjectType.GROUP)
    assert group_events.count() == 1  # the assignment's
    assert downstream.member_names("Waiting") == {"m1", "m2", "m3", "m4"}


def test_a_group_whose_pass_has_begun_gets_the_event_and_is_sent_again(downstream):
    connector = make_connector(downstream)
    alice, bob = _users("alice", "bob")
    group = GroupFactory(name="Busy", members=[alice])
    assign(connector, group=group)
    sync(connector)
    directory.group_add_members(actor=None, group=group, users=[bob])
    # Another worker has leased the group (its pass began before bob is linked).
    RemoteObject.objects.filter(connector=connector, object_id=group.pk).update(
        lease_owner="other", lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    before = OutboxEvent.objects.filter(connector=connector, object_type=ObjectType.GROUP).count()

    batch.process_batch(connector.pk, deadline=time.monotonic() + 30)  # bob is created

    assert OutboxEvent.objects.filter(connector=connector, object_type=ObjectType.GROUP).count() == before + 1
    RemoteObject.objects.filter(connector=connector, object_id=group.pk).update(lease_owner="", lease_expires_at=None)
    sync(connector)
    assert downstream.member_names("Busy") == {"alice", "bob"}
