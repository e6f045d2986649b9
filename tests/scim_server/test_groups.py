"""Groups over SCIM: members are users named by their SCIM ids, written through directory services."""

import pytest

from apps.audit.models import AuditEvent
from apps.directory import services
from apps.directory.models import Group, Membership
from tests.factories import GroupFactory, UserFactory
from tests.scim_server.conftest import GROUP_SCHEMA, assert_scim_error

pytestmark = pytest.mark.django_db


def member_ids(group) -> set[str]:
    return {str(pk) for pk in Membership.objects.filter(group=group).values_list("user_id", flat=True)}


def test_create_with_members_and_read_back(scim):
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    response = scim.post(
        "Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Sales",
            "externalId": "okta-g1",
            "members": [{"value": str(ann.pk), "type": "User"}, {"value": str(bob.pk)}],
        },
    )
    assert response.status_code == 201, response.content
    document = response.json()
    group = Group.objects.get(name="Sales")
    assert document["id"] == str(group.pk) and document["externalId"] == "okta-g1"
    assert sorted(document["members"], key=lambda m: m["value"]) == sorted(
        [
            {"value": str(user.pk), "$ref": f"http://testserver/scim/v2/Users/{user.pk}", "type": "User"}
            for user in (ann, bob)
        ],
        key=lambda m: m["value"],
    )
    assert document["meta"]["resourceType"] == "Group" and response["ETag"] == document["meta"]["version"]
    assert member_ids(group) == {str(ann.pk), str(bob.pk)}
    assert AuditEvent.objects.filter(action="group.members.add", target_id=str(group.pk)).exists()
    # display is returned on request only
    shown = scim.get(f"Groups/{group.pk}", attributes="members.display,displayName").json()
    assert sorted(member["display"] for member in shown["members"]) == ["ann", "bob"]


def test_duplicate_display_name_is_409_and_unknown_members_400(scim):
    GroupFactory(name="Ops")
    assert_scim_error(scim.post("Groups", {"schemas": [GROUP_SCHEMA], "displayName": "OPS"}), 409, "uniqueness")
    missing = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "X",
        "members": [{"value": "11111111-1111-1111-1111-111111111111"}],
    }
    assert_scim_error(scim.post("Groups", missing), 400, "invalidValue")
    integer_id = {"schemas": [GROUP_SCHEMA], "displayName": "Y", "members": [{"value": "1"}]}
    assert_scim_error(scim.post("Groups", integer_id), 400, "invalidValue")
    assert not Group.objects.filter(name__in=["X", "Y"]).exists()


def test_okta_member_removal_by_value_filter_and_add(scim):
    ann, bob, cid = UserFactory(), UserFactory(), UserFactory()
    group = GroupFactory(name="Okta Group")
    services.group_add_members(actor=None, group=group, users=[ann, bob])
    before = scim.get(f"Groups/{group.pk}")["ETag"]
    response = scim.patch_ops(
        f"Groups/{group.pk}",
        {"op": "remove", "path": f'members[value eq "{ann.pk}"]'},
        {"op": "add", "path": "members", "value": [{"value": str(cid.pk)}, {"value": str(bob.pk)}]},
    )
    assert response.status_code == 200, response.content
    assert member_ids(group) == {str(bob.pk), str(cid.pk)}
    assert response["ETag"] != before
    # Removing someone who is no longer a member is a harmless no-op (Okta retries).
    assert (
        scim.patch_ops(f"Groups/{group.pk}", {"op": "remove", "path": f'members[value eq "{ann.pk}"]'}).status_code
        == 200
    )


def test_entra_replace_members_without_path_and_rename(scim):
    ann, bob = UserFactory(), UserFactory()
    group = GroupFactory(name="Entra Group")
    services.group_add_members(actor=None, group=group, users=[ann])
    response = scim.patch_ops(
        f"Groups/{group.pk}",
        {"op": "Replace", "value": {"members": [{"value": str(bob.pk)}], "displayName": "Renamed"}},
    )
    assert response.status_code == 200, response.content
    group.refresh_from_db()
    assert group.name == "Renamed" and member_ids(group) == {str(bob.pk)}
    assert AuditEvent.objects.filter(action="group.rename", target_id=str(group.pk), actor_label="scim:tests").exists()
    services.group_add_members(actor=None, group=group, users=[ann])
    entra_removal = {"op": "Remove", "path": "members", "value": [{"value": str(bob.pk)}]}
    assert scim.patch_ops(f"Groups/{group.pk}", entra_removal).status_code == 200
    assert member_ids(group) == {str(ann.pk)}
    scim.patch_ops(f"Groups/{group.pk}", {"op": "remove", "path": "members"})
    assert member_ids(group) == set()


def test_put_replaces_members_and_delete(scim):
    ann, bob = UserFactory(), UserFactory()
    group = GroupFactory(name="Put Group")
    services.group_add_members(actor=None, group=group, users=[ann])
    body = {
        "schemas": [GROUP_SCHEMA],
        "id": str(group.pk),
        "displayName": "Put Group",
        "members": [{"value": str(bob.pk)}],
    }
    assert scim.put(f"Groups/{group.pk}", body).status_code == 200
    assert member_ids(group) == {str(bob.pk)}
    assert scim.delete(f"Groups/{group.pk}").status_code == 204
    assert not Group.objects.filter(pk=group.pk).exists()
    assert_scim_error(scim.get(f"Groups/{group.pk}"), 404)


def test_group_patch_refusals(scim):
    group = GroupFactory(name="Refusals")
    cases = [
        ({"op": "replace", "path": "id", "value": "x"}, "mutability"),
        ({"op": "replace", "path": "members[value eq", "value": []}, "invalidPath"),
        ({"op": "replace", "path": "owner", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": 'members[value eq "nobody"]', "value": {"value": "x"}}, "noTarget"),
        (
            {
                "op": "add",
                "path": "members",
                "value": [{"value": "11111111-1111-1111-1111-111111111111", "type": "Group"}],
            },
            "invalidValue",
        ),
    ]
    for operation, scim_type in cases:
        assert_scim_error(scim.patch_ops(f"Groups/{group.pk}", operation), 400, scim_type)


def test_filter_groups_by_display_name_and_member(scim):
    ann = UserFactory()
    first, second = GroupFactory(name="Alpha"), GroupFactory(name="Beta")
    services.group_add_members(actor=None, group=second, users=[ann])
    by_name = scim.get("Groups", filter='displayName eq "alpha"').json()
    assert [g["id"] for g in by_name["Resources"]] == [str(first.pk)]
    by_member = scim.get("Groups", filter=f'members[value eq "{ann.pk}"]', excludedAttributes="members").json()
    assert [g["id"] for g in by_member["Resources"]] == [str(second.pk)]
    assert "members" not in by_member["Resources"][0]
