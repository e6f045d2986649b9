"""Rule-based groups over SCIM: members are read-only (400 mutability), user changes over SCIM and
Bulk move users in and out of rule-based groups in the same transaction."""

import pytest

from apps.audit.models import AuditEvent
from apps.directory.models import Membership
from apps.directory.rules.services import group_rule_save
from tests.factories import GroupFactory, UserFactory
from tests.scim_server.conftest import GROUP_SCHEMA, assert_scim_error

pytestmark = pytest.mark.django_db

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENGINEERING = [{"attribute": "email", "op": "ew", "value": "@eng.example.com"}]


def members(group) -> set[str]:
    return set(Membership.objects.filter(group=group).values_list("user__username", flat=True))


@pytest.fixture
def engineering(db):
    UserFactory(username="ann", email="ann@eng.example.com")
    group = GroupFactory(name="Engineering")
    group_rule_save(actor=None, group=group, match="all", conditions=ENGINEERING)
    return group


def test_patch_and_put_of_members_are_refused_with_mutability(scim, engineering):
    bob = UserFactory(username="bob", email="bob@sales.example.com")
    add = {"op": "add", "path": "members", "value": [{"value": str(bob.pk)}]}
    error = assert_scim_error(scim.patch_ops(f"Groups/{engineering.pk}", add), 400, "mutability")
    assert "Engineering is a rule-based group" in error["detail"]
    remove = {"op": "remove", "path": "members"}
    assert_scim_error(scim.patch_ops(f"Groups/{engineering.pk}", remove), 400, "mutability")
    put = {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": [{"value": str(bob.pk)}]}
    assert_scim_error(scim.put(f"Groups/{engineering.pk}", put), 400, "mutability")
    assert members(engineering) == {"ann"}
    # Renaming without touching the members still works, and the members read back as derived.
    rename = {"op": "replace", "path": "displayName", "value": "Engineers"}
    response = scim.patch_ops(f"Groups/{engineering.pk}", rename)
    assert response.status_code == 200, response.content
    assert [member["value"] for member in response.json()["members"]] == [
        str(pk) for pk in Membership.objects.filter(group=engineering).values_list("user_id", flat=True)
    ]


def test_user_writes_over_scim_re_evaluate_the_rules(scim, engineering):
    created = scim.post(
        "Users",
        {"schemas": [USER_SCHEMA], "userName": "cid", "emails": [{"value": "cid@eng.example.com", "primary": True}]},
    )
    assert created.status_code == 201, created.content
    assert members(engineering) == {"ann", "cid"}
    user_id = created.json()["id"]
    moved = scim.patch_ops(
        f"Users/{user_id}",
        {"op": "replace", "path": "emails", "value": [{"value": "cid@sales.example.com", "primary": True}]},
    )
    assert moved.status_code == 200, moved.content
    assert members(engineering) == {"ann"}
    deactivated_ann = scim.get("Users", filter='userName eq "ann"').json()["Resources"][0]["id"]
    bulk = {
        "schemas": [BULK_REQUEST],
        "Operations": [
            {
                "method": "PATCH",
                "path": f"/Users/{user_id}",
                "data": {
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {
                            "op": "replace",
                            "path": "emails",
                            "value": [{"value": "cid@eng.example.com", "primary": True}],
                        }
                    ],
                },
            },
            {
                "method": "POST",
                "bulkId": "d",
                "path": "/Users",
                "data": {
                    "schemas": [USER_SCHEMA],
                    "userName": "dan",
                    "emails": [{"value": "dan@eng.example.com", "primary": True}],
                },
            },
            {
                "method": "PATCH",
                "path": f"/Users/{deactivated_ann}",
                "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]},
            },
        ],
    }
    response = scim.post("Bulk", bulk)
    assert response.status_code == 200, response.content
    assert [operation["status"] for operation in response.json()["Operations"]] == ["200", "201", "200"]
    # The rule reads the email only: ann stays although suspended.
    assert members(engineering) == {"ann", "cid", "dan"}
    assert (
        AuditEvent.objects.filter(action="group.rule.member_add", target_label="dan").get().after["cause"]["trigger"]
        == "user.create"
    )
