"""SCIM: a token's power must not reach past the staff-rank rule, nor past the request budget.

The attack of issue 12, item 1: an `admin` creates a SCIM token in the console and, with it, tries to
take over a super-admin (change the email, suspend, reset the password through the new address,
delete), directly, through PUT and PATCH, through /Bulk, and through group membership. Each is refused
with a 403 SCIM error naming the rule, audited as `scim.refused`, and nothing changes.
"""

import json
import re

import pytest
from django.core import mail
from django.test import Client

from apps.audit.models import AuditEvent
from apps.directory import services as directory
from apps.directory.models import AdminRole, Group, Membership, User, UserStatus
from apps.scim_server.models import ScimToken
from tests.factories import GroupFactory, UserFactory
from tests.scim_server.conftest import PATCH_OP, SCIM_JSON, ScimClient, assert_scim_error, make_scim_client, user_body
from tests.security.conftest import make_person, signed_in

pytestmark = pytest.mark.django_db

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _console_scim_token(client: Client, name: str, **fields) -> ScimClient:
    """Create a SCIM token in the console as its signed-in admin would, and use the secret shown once."""
    response = client.post("/console/tokens/scim/new/", {"name": name, "scope": "read_write", **fields})
    assert response.status_code == 201, response.content[:500]
    secret = re.search(r'id="new-token-secret">([^<]+)<', response.content.decode()).group(1)
    return ScimClient(secret, ScimToken.objects.get(name=name))


def _snapshot(user: User) -> tuple:
    user = User.objects.get(pk=user.pk)
    groups = sorted(str(pk) for pk in Membership.objects.filter(user=user).values_list("group_id", flat=True))
    return (user.username, user.email, user.first_name, user.status, user.password, user.is_superuser, groups)


def _refused(response) -> str:
    body = assert_scim_error(response, 403)
    assert "administrators' accounts or groups" in body["detail"], body
    return body["detail"]


def test_admin_made_token_cannot_take_over_a_super_admin_by_patch_put_delete(admin, super_admin, settings):
    settings.SCIM_ALLOW_PASSWORD_WRITE = True  # the worst case: a server that takes passwords over SCIM
    attacker = _console_scim_token(signed_in(admin), "hr-sync")
    assert attacker.token.manages_staff is False
    target = f"Users/{super_admin.pk}"
    before = _snapshot(super_admin)

    _refused(
        attacker.patch_ops(target, {"op": "replace", "path": "emails", "value": [{"value": "evil@attacker.example"}]})
    )
    _refused(attacker.patch_ops(target, {"op": "replace", "path": "active", "value": False}))
    _refused(attacker.patch_ops(target, {"op": "replace", "path": "password", "value": "Owned-Passw0rd!"}))
    replaced = attacker.get(target).json()
    replaced["emails"] = [{"value": "evil@attacker.example", "type": "work", "primary": True}]
    _refused(attacker.put(target, replaced))
    _refused(attacker.delete(target))

    # The password reset the attacker would send next goes to the real address, if anywhere.
    Client().post("/password-reset/", {"email": "evil@attacker.example"})
    assert all("evil@attacker.example" not in message.to for message in mail.outbox)
    assert _snapshot(super_admin) == before
    refusals = AuditEvent.objects.filter(action="scim.refused", target_id=str(super_admin.pk))
    assert refusals.count() == 5
    assert {event.actor_label for event in refusals} == {"scim:hr-sync"}
    assert {event.after["reason"] for event in refusals} == {"staff_account_protected"}


def test_admin_made_token_cannot_change_staff_through_bulk(admin, super_admin, helpdesk):
    attacker = _console_scim_token(signed_in(admin), "bulk-sync")
    before = (_snapshot(super_admin), _snapshot(helpdesk))
    plain = UserFactory(username="plain.person")
    operations = [
        {"method": "PATCH", "path": f"/Users/{super_admin.pk}", "bulkId": "a", "data": {
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]}},
        {"method": "DELETE", "path": f"/Users/{helpdesk.pk}", "bulkId": "b"},
        {"method": "PATCH", "path": f"/Users/{plain.pk}", "bulkId": "c", "data": {
            "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Plain"}]}},
    ]  # fmt: skip

    response = attacker.post("Bulk", {"schemas": [BULK_REQUEST], "Operations": operations})

    assert response.status_code == 200
    statuses = [entry["status"] for entry in response.json()["Operations"]]
    assert statuses == ["403", "403", "200"]
    assert (_snapshot(super_admin), _snapshot(helpdesk)) == before
    assert User.objects.get(pk=plain.pk).display_name == "Plain"  # non-staff are the token's to manage


def test_group_scoped_token_cannot_change_an_admin_in_its_group(admin, super_admin):
    contractors = GroupFactory(name="Contractors")
    directory.group_add_members(actor=None, group=contractors, users=[admin])
    client = signed_in(super_admin)  # a super-admin may scope a token, and still it grants no rank
    attacker = _console_scim_token(client, "agency", scope_group=str(contractors.pk))
    before = _snapshot(admin)

    _refused(attacker.patch_ops(f"Users/{admin.pk}", {"op": "replace", "path": "name.givenName", "value": "X"}))
    _refused(attacker.delete(f"Users/{admin.pk}"))

    assert _snapshot(admin) == before


def test_token_cannot_add_or_remove_staff_in_groups(super_admin, admin):
    attacker = make_scim_client("idp-sync")
    payroll = GroupFactory(name="Payroll app")
    directory.group_add_members(actor=None, group=payroll, users=[super_admin])

    _refused(
        attacker.patch_ops(
            f"Groups/{payroll.pk}", {"op": "add", "path": "members", "value": [{"value": str(admin.pk)}]}
        )
    )
    _refused(
        attacker.patch_ops(f"Groups/{payroll.pk}", {"op": "remove", "path": f'members[value eq "{super_admin.pk}"]'})
    )
    replaced = attacker.get(f"Groups/{payroll.pk}").json()
    replaced["members"] = []
    _refused(attacker.put(f"Groups/{payroll.pk}", replaced))
    _refused(attacker.delete(f"Groups/{payroll.pk}"))
    created = attacker.post("Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                       "displayName": "Back door", "members": [{"value": str(admin.pk)}]})  # fmt: skip
    _refused(created)

    assert set(Membership.objects.filter(group=payroll).values_list("user_id", flat=True)) == {super_admin.pk}
    assert not Group.objects.filter(name="Back door").exists()


def test_staff_accounts_stay_readable_to_every_token(super_admin):
    reader = make_scim_client("reports")
    found = reader.get("Users", filter=f'userName eq "{super_admin.username}"').json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == str(super_admin.pk)


def test_admin_cannot_create_a_staff_managing_token_in_console_or_api(admin):
    client = signed_in(admin)
    form = client.get("/console/tokens/scim/new/").content.decode()
    assert 'name="manages_staff"' not in form and "only a super-admin" in form
    token = _console_scim_token(client, "sneaky", manages_staff="on")  # a forged field is ignored
    assert token.token.manages_staff is False

    from rest_framework.test import APIClient

    from apps.api.services import api_token_create

    _, secret = api_token_create(actor=None, user=admin, name="admin-api")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    refused = api.post("/api/v1/scim-tokens", {"name": "sneaky-api", "manages_staff": True}, format="json")
    assert refused.status_code == 403 and "super-admin" in refused.json()["detail"]
    assert not ScimToken.objects.filter(name="sneaky-api").exists()


def test_super_admin_grants_staff_management_visibly_and_it_works(super_admin, admin):
    client = signed_in(super_admin)
    token = _console_scim_token(client, "workday", manages_staff="on")
    assert token.token.manages_staff is True
    listing = client.get("/console/tokens/scim/").content.decode()
    assert "Manages staff" in listing and "Staff accounts read-only" not in listing
    created = AuditEvent.objects.get(action="scim_token.create", target_id=str(token.token.pk))
    assert created.after["manages_staff"] is True and created.actor_id == super_admin.pk

    changed = token.patch_ops(f"Users/{admin.pk}", {"op": "replace", "path": "name.givenName", "value": "Ada"})
    assert changed.status_code == 200
    assert User.objects.get(pk=admin.pk).first_name == "Ada"


def test_text_plain_write_is_refused_with_415(db):
    attacker = make_scim_client("cross-site")
    response = attacker.client.post(
        "/scim/v2/Users", data=json.dumps(user_body("sneaky.user")), content_type="text/plain"
    )
    body = assert_scim_error(response, 415)
    assert "application/scim+json" in body["detail"]
    assert not User.objects.filter(username="sneaky.user").exists()
    form = attacker.client.post("/scim/v2/Users", {"userName": "form.user"})
    assert_scim_error(form, 415)


def test_bulk_is_weighed_by_its_operations_in_the_rate_limit(db, settings):
    settings.SCIM_RATE_LIMIT_PER_MINUTE = 10
    flooder = make_scim_client("flooder")
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": f"u{index}", "data": user_body(f"bulk.{index}")}
        for index in range(8)
    ]
    first = flooder.post("Bulk", {"schemas": [BULK_REQUEST], "Operations": operations})
    assert first.status_code == 200
    # 8 operations spent 8 of the 10 a minute: the next bulk of 8 is over budget, whole.
    operations = [{**operation, "bulkId": f"v{index}", "data": user_body(f"more.{index}")}
                  for index, operation in enumerate(operations)]  # fmt: skip
    second = flooder.post("Bulk", {"schemas": [BULK_REQUEST], "Operations": operations})
    assert_scim_error(second, 429)
    assert second["Retry-After"]
    assert User.objects.filter(username__startswith="more.").count() == 0
    too_big = make_scim_client("too-big")
    settings.SCIM_RATE_LIMIT_PER_MINUTE = 3
    assert_scim_error(too_big.post("Bulk", {"schemas": [BULK_REQUEST], "Operations": operations}), 413)


def test_deleting_a_group_a_live_token_is_scoped_to_is_refused_by_name(super_admin):
    contractors = GroupFactory(name="Contractors")
    scoped = make_scim_client("workday", scope_group=contractors)
    other = make_scim_client("okta")

    by_scim = assert_scim_error(other.delete(f"Groups/{contractors.pk}"), 409)
    assert "workday" in by_scim["detail"]

    client = signed_in(super_admin)
    page = client.get(f"/console/groups/{contractors.pk}/delete/").content.decode()
    assert "workday" in page and "Revoke the token" in page
    refused = client.post(f"/console/groups/{contractors.pk}/delete/", follow=True)
    assert refused.status_code == 200 and "workday" in refused.content.decode()

    from rest_framework.test import APIClient

    from apps.api.services import api_token_create

    _, secret = api_token_create(actor=None, user=super_admin, name="api")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    by_api = api.delete(f"/api/v1/groups/{contractors.pk}")
    assert by_api.status_code == 409 and "workday" in by_api.json()["detail"]
    assert Group.objects.filter(pk=contractors.pk).exists()
    assert not AuditEvent.objects.filter(action="group.delete", target_id=str(contractors.pk)).exists()

    # Once revoked, the token no longer holds the group; it only loses the record of its scope.
    from apps.scim_server.services import scim_token_revoke

    scim_token_revoke(actor=super_admin, token=scoped.token)
    assert api.delete(f"/api/v1/groups/{contractors.pk}").status_code == 204
    scoped.token.refresh_from_db()
    assert scoped.token.scope_group is None and scoped.token.revoked_at is not None


def test_suspended_staff_cannot_be_reactivated_by_a_token(super_admin):
    dormant = make_person("old.admin", role=AdminRole.ADMIN)
    directory.user_suspend(actor=super_admin, user=dormant)
    attacker = make_scim_client("hr")
    _refused(attacker.patch_ops(f"Users/{dormant.pk}", {"op": "replace", "path": "active", "value": True}))
    assert User.objects.get(pk=dormant.pk).status == UserStatus.SUSPENDED


def test_json_content_type_with_charset_is_accepted(db):
    client = make_scim_client("plain-json")
    response = client.client.post(
        "/scim/v2/Users", data=json.dumps(user_body("json.user")), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 201
    assert response["Content-Type"].startswith(SCIM_JSON)
