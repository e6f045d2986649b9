"""The planner alone: pure decisions from an object, its link row and the connector's settings.

No database and no app: users, groups and links are plain objects with the fields the planner reads.
"""

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from apps.provisioning import mapping
from apps.provisioning.planner import (
    Action,
    PlanSettings,
    plan_group,
    plan_unmanaged_user,
    plan_user,
)

ALL = frozenset({"create_users", "update_users", "deactivate_users", "delete_users", "push_groups"})
USER_MAPPINGS = (("username", "userName"), ("status", "active"), ("last_name", "name.familyName"))
GROUP_MAPPINGS = (("name", "displayName"),)
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _settings(operations=ALL, **changes) -> PlanSettings:
    values = {"deprovision": "deactivate", "update_method": "patch", "deprovision_unmanaged": False}
    values.update(changes)
    return PlanSettings(frozenset(operations), user_mappings=USER_MAPPINGS, group_mappings=GROUP_MAPPINGS, **values)


def _user(status="active", last_name="Liddell"):
    return SimpleNamespace(
        pk="u1", username="alice", email="", first_name="Alice", last_name=last_name, display_name="",
        employee_id="", external_id="", status=status,
    )  # fmt: skip


def _sent(user) -> dict:
    return mapping.build_user_resource(mapping.user_properties(user), USER_MAPPINGS)


def _link(remote_id="r1", status="synced", last_sent=None, remote_members=()):
    return SimpleNamespace(
        remote_id=remote_id, status=status, last_sent=last_sent,
        last_sent_hash=mapping.resource_hash(last_sent) if last_sent else "", remote_members=list(remote_members),
    )  # fmt: skip


def test_a_new_user_is_created_unless_creating_is_turned_off():
    plan = plan_user(_user(), None, _settings(), in_scope=True)
    assert (plan.action, plan.request.method, plan.request.path, plan.status) == ("create", "POST", "/Users", "synced")
    assert plan.request.body == _sent(_user())

    held = plan_user(_user(), None, _settings(ALL - {"create_users"}), in_scope=True)
    assert (held.action, held.request, held.status) == ("skip", None, "skipped")
    assert held.note == "Creating users is turned off for this connector."


def test_an_unchanged_user_sends_nothing_and_a_changed_one_sends_the_difference():
    link = _link(last_sent=_sent(_user()))
    assert plan_user(_user(), link, _settings(), in_scope=True).action == Action.NONE

    plan = plan_user(_user(last_name="Hargreaves"), link, _settings(), in_scope=True)
    assert (plan.action, plan.request.method, plan.request.path, plan.changed) == (
        "update", "PATCH", "/Users/r1", ("name",),
    )  # fmt: skip
    assert plan.request.body == {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "name", "value": {"familyName": "Hargreaves"}},
    ]}  # fmt: skip
    put = plan_user(_user(last_name="Hargreaves"), link, _settings(update_method="put"), in_scope=True)
    assert (put.request.method, put.request.body) == ("PUT", _sent(_user(last_name="Hargreaves")))
    off = plan_user(_user(last_name="Hargreaves"), link, _settings(ALL - {"update_users"}), in_scope=True)
    assert (off.action, off.note) == ("skip", "Updating users is turned off for this connector.")


def test_suspending_needs_only_the_deactivate_switch():
    link = _link(last_sent=_sent(_user()))
    plan = plan_user(_user(status="suspended"), link, _settings({"deactivate_users"}), in_scope=True)
    assert (plan.action, plan.status, plan.changed) == ("deactivate", "synced", ("active",))
    assert plan.request.body["Operations"] == [{"op": "replace", "path": "active", "value": False}]
    assert plan.provisioned  # still in the app: its groups keep it


@pytest.mark.parametrize(
    ("deprovision", "operation", "method"),
    [("deactivate", "deactivate_users", "PATCH"), ("delete", "delete_users", "DELETE")],
)
def test_a_user_out_of_scope_is_deprovisioned_as_the_connector_says(deprovision, operation, method):
    link = _link(last_sent=_sent(_user()))
    plan = plan_user(_user(), link, _settings(deprovision=deprovision), in_scope=False)
    assert (plan.action, plan.request.method, plan.status, plan.provisioned) == (
        deprovision, method, "deprovisioned", False,
    )  # fmt: skip
    held = plan_user(None, link, _settings(ALL - {operation}, deprovision=deprovision), in_scope=False)
    assert held.action == Action.SKIP and held.note.endswith("is turned off for this connector.")
    gone = plan_user(None, _link(status="deprovisioned"), _settings(deprovision=deprovision), in_scope=False)
    assert (gone.action, gone.status) == ("none", "deprovisioned")


def test_a_user_deleted_in_the_app_comes_back_as_a_create_and_a_deactivated_one_as_an_update():
    inactive = {**_sent(_user()), "active": False}
    deleted = plan_user(
        _user(), _link(status="deprovisioned", last_sent=None), _settings(deprovision="delete"), in_scope=True
    )
    assert (deleted.action, deleted.request.path) == ("create", "/Users")
    back = plan_user(_user(), _link(status="deprovisioned", last_sent=inactive), _settings(), in_scope=True)
    assert (back.action, back.request.method, back.request.path) == ("update", "PATCH", "/Users/r1")


def test_a_deactivation_by_put_sends_what_was_last_sent_with_active_false():
    link = _link(last_sent=_sent(_user()))
    plan = plan_user(None, link, _settings(update_method="put"), in_scope=False)
    assert plan.request.method == "PUT" and plan.request.body == {**_sent(_user()), "active": False}
    assert plan.last_sent == plan.request.body


def _group(name="Crew"):
    return SimpleNamespace(pk="g1", name=name, description="", external_id="")


def test_a_group_is_created_with_its_provisioned_members_and_updated_by_difference():
    create = plan_group(_group(), None, _settings(), assigned=True, member_remote_ids={"u2": "r2", "u1": "r1"})
    assert (create.action, create.method, create.path, create.members) == ("create", "POST", "/Groups", ("u1", "u2"))
    assert create.request().body["members"] == [{"value": "r1"}, {"value": "r2"}]

    resource = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Crew"}
    link = _link(remote_id="g-r", last_sent=resource, remote_members=["u1", "u3"])
    update = plan_group(
        _group("Crew 2"), link, _settings(), assigned=True, member_remote_ids={"u1": "r1", "u2": "r2"},
        removed_remote_ids={"u3": "r3"},
    )  # fmt: skip
    assert (update.added, update.removed, update.method, update.path) == (("u2",), ("u3",), "PATCH", "/Groups/g-r")
    assert update.request().body["Operations"] == [
        {"op": "replace", "path": "displayName", "value": "Crew 2"},
        {"op": "add", "path": "members", "value": [{"value": "r2"}]},
        {"op": "remove", "path": 'members[value eq "r3"]'},
    ]


def test_groups_follow_the_push_switch_their_assignment_and_their_members():
    link = _link(remote_id="g-r")
    off = plan_group(_group(), link, _settings(ALL - {"push_groups"}), assigned=True, member_remote_ids={"u1": "r1"})
    assert (off.action, off.note) == ("skip", "Pushing groups is turned off for this connector.")
    gone = plan_group(None, link, _settings(), assigned=False, member_remote_ids={})
    assert (gone.action, gone.request().method, gone.request().path) == ("delete", "DELETE", "/Groups/g-r")
    empty = plan_group(_group(), None, _settings(), assigned=True, member_remote_ids={})
    assert (empty.action, empty.status, empty.note) == ("none", "skipped", "Empty groups are not created in the app.")


def test_a_large_group_plan_counts_its_requests_and_builds_each_one_when_asked():
    resource = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Crew"}
    link = _link(remote_id="g-r", last_sent=resource, remote_members=[f"u{i}" for i in range(5)])
    leavers = {f"u{i}": f"r{i}" for i in range(3)}
    members = {f"u{i}": f"r{i}" for i in range(3, 10)}  # u3, u4 stay; u5 to u9 join
    plan = plan_group(
        _group("Crew"), link, _settings(group_members_per_request=3), assigned=True, member_remote_ids=members,
        removed_remote_ids=leavers,
    )  # fmt: skip
    steps = plan.iter_steps()
    assert isinstance(steps, Iterator) and plan.step_count() == 3  # 8 changes, 3 a request
    assert [(step.added, step.removed) for step in steps] == [
        (("u5", "u6", "u7"), ()),
        (("u8", "u9"), ("u0",)),
        ((), ("u1", "u2")),
    ]
    assert [step.request for step in plan.steps()] == [step.request for step in plan.iter_steps()]
    chunked = _settings(group_members_per_request=3)
    create = plan_group(_group(), None, chunked, assigned=True, member_remote_ids=members)
    renamed = plan_group(_group("Crew 2"), _link(remote_id="g-r", last_sent=resource), _settings(), assigned=True,
                         member_remote_ids={})  # fmt: skip
    gone = plan_group(None, link, _settings(), assigned=False, member_remote_ids={})
    same = plan_group(_group("Crew"), _link(remote_id="g-r", last_sent=resource), _settings(), assigned=True,
                      member_remote_ids={})  # fmt: skip
    for plan in (create, renamed, gone, same):
        assert plan.step_count() == len(plan.steps()) == (0 if plan is same else 1)


def test_users_only_the_app_has_are_deprovisioned_only_when_the_connector_says_so():
    stranger = {"id": "x1", "userName": "stranger", "active": True}
    scope = {"linked_remote_ids": {"r1"}, "in_scope_names": {"alice"}}
    assert plan_unmanaged_user(stranger, _settings(), **scope) is None
    on = _settings(deprovision_unmanaged=True)
    assert plan_unmanaged_user(stranger, on, **scope).path == "/Users/x1"
    assert plan_unmanaged_user({**stranger, "id": "r1"}, on, **scope) is None  # linked: one of ours
    assert plan_unmanaged_user({**stranger, "userName": "Alice"}, on, **scope) is None  # to be linked
    assert plan_unmanaged_user({**stranger, "active": False}, on, **scope) is None  # already inactive
    deleting = _settings(deprovision_unmanaged=True, deprovision="delete")
    assert plan_unmanaged_user({**stranger, "active": False}, deleting, **scope).method == "DELETE"
