"""Users over SCIM: the wire format, writes through directory services, PATCH paths, ETags."""

import pytest

from apps.audit.models import AuditEvent
from apps.directory import services
from apps.directory.models import User, UserStatus
from tests.factories import GroupFactory, UserFactory
from tests.scim_server.conftest import ENTERPRISE, USER_SCHEMA, assert_scim_error, make_scim_client, user_body

pytestmark = pytest.mark.django_db


def test_create_returns_the_resource_with_meta_location_and_version(scim):
    body = user_body("jane.doe", externalId="hr-123", displayName="Jane D.")
    body["schemas"].append(ENTERPRISE)
    body[ENTERPRISE] = {"employeeNumber": "E-42"}
    response = scim.post("Users", body)
    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/scim+json"
    document = response.json()
    user = User.objects.get(username="jane.doe")
    assert document["id"] == str(user.pk)
    assert document == {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "id": str(user.pk),
        "userName": "jane.doe",
        "externalId": "hr-123",
        "name": {"formatted": "Jane D.", "familyName": "Doe", "givenName": "Jane"},
        "displayName": "Jane D.",
        "active": True,
        "emails": [{"value": "jane.doe@example.com", "type": "work", "primary": True}],
        ENTERPRISE: {"employeeNumber": "E-42"},
        "meta": {
            "resourceType": "User",
            "created": document["meta"]["created"],
            "lastModified": document["meta"]["lastModified"],
            "location": f"http://testserver/scim/v2/Users/{user.pk}",
            "version": document["meta"]["version"],
        },
    }
    assert response["Location"] == document["meta"]["location"]
    assert response["ETag"] == document["meta"]["version"] and document["meta"]["version"].startswith('W/"')
    assert (user.external_id, user.employee_id, user.status) == ("hr-123", "E-42", UserStatus.ACTIVE)
    assert not user.has_usable_password()
    event = AuditEvent.objects.get(action="user.create", target_id=str(user.pk))
    assert event.actor_label == "scim:tests" and event.actor is None


def test_get_unknown_or_malformed_id_is_a_scim_404(scim):
    assert_scim_error(scim.get("Users/00000000-0000-0000-0000-000000000000"), 404)
    assert_scim_error(scim.get("Users/42"), 404)


def test_user_without_email_has_no_email_entry_and_staged_users_are_inactive(scim):
    user = UserFactory(username="no.mail", email="")
    services.user_stage(actor=None, user=user)
    document = scim.get(f"Users/{user.pk}").json()
    assert "emails" not in document
    assert document["active"] is False


def test_groups_are_listed_read_only_with_scim_ids(scim):
    user = UserFactory()
    group = GroupFactory(name="Engineering")
    services.group_add_members(actor=None, group=group, users=[user])
    document = scim.get(f"Users/{user.pk}").json()
    assert document["groups"] == [
        {
            "value": str(group.pk),
            "$ref": f"http://testserver/scim/v2/Groups/{group.pk}",
            "display": "Engineering",
            "type": "direct",
        }
    ]


def test_duplicate_username_is_409_uniqueness_case_insensitively(scim):
    assert scim.post("Users", user_body("dup.user")).status_code == 201
    assert_scim_error(scim.post("Users", user_body("DUP.USER", emails=[])), 409, "uniqueness")


def test_invalid_values_are_400_invalid_value(scim):
    assert_scim_error(scim.post("Users", user_body("has space")), 400, "invalidValue")
    assert_scim_error(scim.post("Users", user_body("x", emails=[{"value": "not-an-email"}])), 400, "invalidValue")
    assert_scim_error(scim.post("Users", user_body("y", active="maybe")), 400, "invalidValue")
    assert_scim_error(scim.post("Users", {"schemas": [USER_SCHEMA]}), 400, "invalidValue")
    assert_scim_error(scim.post("Users", user_body("z", schemas=["urn:x"])), 400, "invalidValue")


@pytest.mark.parametrize(
    ("extra", "scim_type"),
    [
        ({"id": "11111111-1111-1111-1111-111111111111"}, "mutability"),
        ({"meta": {"resourceType": "User", "created": "2020-01-01T00:00:00Z"}}, "mutability"),
        ({"groups": [{"value": "11111111-1111-1111-1111-111111111111"}]}, "mutability"),
        ({"is_staff": True}, "invalidPath"),
        ({"is_superuser": True}, "invalidPath"),
        ({"roles": [{"value": "admin"}]}, "invalidPath"),
        ({"name": {"givenName": "A", "middleName": "B"}}, "invalidPath"),
        ({"password": "Secret-pass-123"}, "mutability"),
    ],
)
def test_post_of_read_only_or_unknown_attributes_is_refused(scim, extra, scim_type):
    assert_scim_error(scim.post("Users", user_body("refused", **extra)), 400, scim_type)
    assert not User.objects.filter(username="refused").exists()


def test_okta_style_create_with_empty_groups_is_accepted(scim):
    assert scim.post("Users", user_body("okta.user", groups=[])).status_code == 201


def test_put_replaces_and_ignores_read_only_attributes(scim):
    document = scim.post("Users", user_body("put.user", externalId="x1")).json()
    replacement = {
        **document,
        "name": {"givenName": "Penny"},
        "displayName": "Penny P",
        "emails": [{"value": "penny@example.com", "type": "work"}],
        "active": False,
        "groups": [],
    }
    del replacement["externalId"]
    response = scim.put(f"Users/{document['id']}", replacement)
    assert response.status_code == 200, response.content
    user = User.objects.get(pk=document["id"])
    assert (user.first_name, user.last_name, user.display_name, user.email, user.external_id, user.status) == (
        "Penny",
        "",
        "Penny P",
        "penny@example.com",
        "",
        UserStatus.SUSPENDED,
    )
    other = {**replacement, "id": "11111111-1111-1111-1111-111111111111"}
    assert_scim_error(scim.put(f"Users/{document['id']}", other), 400, "mutability")


def test_patch_entra_style_capitalised_ops_pathless_add_and_string_booleans(scim):
    user_id = scim.post("Users", user_body("entra.user")).json()["id"]
    response = scim.patch_ops(
        f"Users/{user_id}",
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "value": {"name.givenName": "Eve", f"{ENTERPRISE}:employeeNumber": "77", "externalId": "aad-1"}},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "eve@example.com"},
        {"op": "Add", "path": "displayName", "value": "Eve Entra"},
    )
    assert response.status_code == 200, response.content
    user = User.objects.get(pk=user_id)
    assert (user.status, user.first_name, user.employee_id, user.external_id, user.email, user.display_name) == (
        UserStatus.SUSPENDED,
        "Eve",
        "77",
        "aad-1",
        "eve@example.com",
        "Eve Entra",
    )
    assert scim.patch_ops(f"Users/{user_id}", {"op": "replace", "value": {"active": "True"}}).json()["active"] is True


def test_patch_paths_on_emails_and_names(scim):
    user_id = scim.post("Users", user_body("paths.user", emails=[])).json()["id"]
    # Add through a filter that matches nothing creates the value, as Entra ID expects.
    scim.patch_ops(f"Users/{user_id}", {"op": "add", "path": 'emails[type eq "work"].value', "value": "p@example.com"})
    assert User.objects.get(pk=user_id).email == "p@example.com"
    scim.patch_ops(f"Users/{user_id}", {"op": "remove", "path": 'emails[type eq "work"]'})
    assert User.objects.get(pk=user_id).email == ""
    scim.patch_ops(f"Users/{user_id}", {"op": "replace", "path": "name", "value": {"familyName": "Newname"}})
    user = User.objects.get(pk=user_id)
    assert (user.first_name, user.last_name) == ("Jane", "Newname")
    assert user.display_name == "Jane Newname"  # follows the name until set explicitly
    scim.patch_ops(f"Users/{user_id}", {"op": "remove", "path": "name.givenName"})
    assert User.objects.get(pk=user_id).first_name == ""
    scim.patch_ops(f"Users/{user_id}", {"op": "remove", "path": ENTERPRISE})
    assert User.objects.get(pk=user_id).employee_id == ""


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "replace", "path": "id", "value": "x"}, "mutability"),
        ({"op": "replace", "path": "meta.created", "value": "x"}, "mutability"),
        ({"op": "add", "path": "groups", "value": [{"value": "11111111-1111-1111-1111-111111111111"}]}, "mutability"),
        ({"op": "replace", "path": "is_staff", "value": True}, "invalidPath"),
        ({"op": "replace", "value": {"is_superuser": True}}, "invalidPath"),
        ({"op": "replace", "path": "ims", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "emails[type eq", "value": "x"}, "invalidPath"),
        ({"op": "remove"}, "noTarget"),
        ({"op": "replace", "path": 'emails[value co "zzz"].value', "value": "a@b.example"}, "noTarget"),
        ({"op": "replace", "path": "password", "value": "Some-password-123"}, "mutability"),
        ({"op": "move", "path": "userName", "value": "x"}, "invalidSyntax"),
        ({"op": "replace", "path": "userName", "value": 5}, "invalidValue"),
        ({"op": "remove", "path": "userName"}, "invalidValue"),
        ({"op": "remove", "path": "displayName"}, "invalidValue"),
    ],
)
def test_patch_refusals(scim, operation, scim_type):
    user_id = scim.post("Users", user_body("patched")).json()["id"]
    before = User.objects.get(pk=user_id).updated
    assert_scim_error(scim.patch_ops(f"Users/{user_id}", operation), 400, scim_type)
    user = User.objects.get(pk=user_id)
    assert user.updated == before and not user.is_staff and not user.is_superuser


def test_if_match_with_a_stale_version_is_412(scim):
    created = scim.post("Users", user_body("etag.user"))
    user_id, version = created.json()["id"], created["ETag"]
    ok = scim.patch_ops(
        f"Users/{user_id}", {"op": "replace", "path": "displayName", "value": "A"}, HTTP_IF_MATCH=version
    )
    assert ok.status_code == 200 and ok["ETag"] != version
    stale = {"op": "replace", "path": "displayName", "value": "B"}
    assert_scim_error(scim.patch_ops(f"Users/{user_id}", stale, HTTP_IF_MATCH=version), 412)
    assert_scim_error(scim.put(f"Users/{user_id}", user_body("etag.user"), HTTP_IF_MATCH=version), 412)
    assert_scim_error(scim.delete(f"Users/{user_id}", HTTP_IF_MATCH=version), 412)
    assert (
        scim.get(
            f"Users/{user_id}",
        ).json()["displayName"]
        == "A"
    )
    not_modified = scim.client.get(f"/scim/v2/Users/{user_id}", HTTP_IF_NONE_MATCH=ok["ETag"])
    assert not_modified.status_code == 304
    assert scim.delete(f"Users/{user_id}", HTTP_IF_MATCH=ok["ETag"]).status_code == 204


def test_delete_goes_through_services_and_is_audited(scim):
    user = UserFactory()
    assert scim.delete(f"Users/{user.pk}").status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert AuditEvent.objects.filter(action="user.delete", target_id=str(user.pk), actor_label="scim:tests").exists()
    assert_scim_error(scim.delete(f"Users/{user.pk}"), 404)


def test_last_super_admin_cannot_be_suspended_or_deleted_and_the_attempt_is_audited(db):
    # A token that may manage staff at all (tests/security covers those that may not).
    scim = make_scim_client(manages_staff=True)
    admin = UserFactory(username="the.admin", is_staff=True, is_superuser=True)
    body = assert_scim_error(
        scim.patch_ops(f"Users/{admin.pk}", {"op": "replace", "path": "active", "value": False}), 403
    )
    assert "last active super-admin" in body["detail"]
    assert_scim_error(scim.delete(f"Users/{admin.pk}"), 403)
    put = scim.get(f"Users/{admin.pk}").json()
    put["active"] = False
    assert_scim_error(scim.put(f"Users/{admin.pk}", put), 403)
    admin.refresh_from_db()
    assert admin.status == UserStatus.ACTIVE and admin.is_superuser
    refusals = AuditEvent.objects.filter(action="scim.refused", target_id=str(admin.pk))
    assert refusals.count() == 3
    assert {event.after["operation"] for event in refusals} == {"patch", "delete", "replace"}
    assert all(event.actor_label == "scim:tests" for event in refusals)
    # With a second active super-admin the same request goes through.
    UserFactory(is_staff=True, is_superuser=True)
    assert scim.patch_ops(f"Users/{admin.pk}", {"op": "replace", "path": "active", "value": False}).status_code == 200


def test_read_only_token_cannot_write(scim_read_only):
    user = UserFactory()
    assert scim_read_only.get(f"Users/{user.pk}").status_code == 200
    assert_scim_error(scim_read_only.post("Users", user_body("ro")), 403)
    assert_scim_error(
        scim_read_only.patch_ops(f"Users/{user.pk}", {"op": "replace", "path": "active", "value": False}), 403
    )
    assert_scim_error(scim_read_only.delete(f"Users/{user.pk}"), 403)


def test_group_scoped_token_sees_and_creates_only_its_groups_users(db):
    from tests.scim_server.conftest import make_scim_client

    group = GroupFactory(name="Contractors")
    inside, outside = UserFactory(), UserFactory()
    services.group_add_members(actor=None, group=group, users=[inside])
    client = make_scim_client("hr", scope_group=group)
    listed = client.get("Users").json()
    assert [resource["id"] for resource in listed["Resources"]] == [str(inside.pk)]
    assert_scim_error(client.get(f"Users/{outside.pk}"), 404)
    assert_scim_error(client.delete(f"Users/{outside.pk}"), 404)
    created = client.post("Users", user_body("new.contractor")).json()
    assert group.memberships.filter(user_id=created["id"]).exists()
    assert [g["id"] for g in client.get("Groups").json()["Resources"]] == [str(group.pk)]
    assert_scim_error(client.patch_ops(f"Groups/{group.pk}", {"op": "remove", "path": "members"}), 403)
