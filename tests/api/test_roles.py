"""The admin API enforces the same roles as the console: help desk and read-only are limited."""

import pytest
from rest_framework.test import APIClient

from apps.api.services import api_token_create
from apps.directory import services as directory
from apps.directory.models import AdminRole
from tests.factories import GroupFactory, UserFactory


def _client_for(role: str) -> APIClient:
    user = UserFactory(username=f"{role}.api")
    directory.user_set_admin_role(actor=None, user=user, role=role)
    _, secret = api_token_create(actor=None, user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.user = user
    return client


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def test_read_only_reads_everything_it_may_and_changes_nothing(db, root):
    client = _client_for(AdminRole.READONLY)
    for url in ("/api/v1/users", "/api/v1/groups", "/api/v1/connectors", "/api/v1/audit-events", "/api/v1/catalog"):
        assert client.get(url).status_code == 200, url
    assert client.post("/api/v1/users", {"username": "x"}, format="json").status_code == 403
    assert client.post("/api/v1/groups", {"name": "x"}, format="json").status_code == 403
    assert client.post("/api/v1/idp-keys", {}, format="json").status_code == 403


def test_help_desk_manages_people_but_not_configuration(db, root):
    client = _client_for(AdminRole.HELPDESK)
    created = client.post("/api/v1/users", {"username": "new.hire", "email": "new.hire@example.com"}, format="json")
    assert created.status_code == 201
    group = GroupFactory(name="Engineering")
    assert client.post(
        f"/api/v1/groups/{group.pk}/members", {"users": [created.data["id"]]}, format="json"
    ).status_code in (
        200,
        201,
    )
    for url in ("/api/v1/connectors", "/api/v1/audit-events", "/api/v1/scim-tokens", "/api/v1/catalog"):
        assert client.get(url).status_code == 403, url


def test_help_desk_cannot_touch_staff_accounts_or_grant_roles(db, root):
    client = _client_for(AdminRole.HELPDESK)
    assert client.patch(f"/api/v1/users/{root.pk}", {"first_name": "Mallory"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/users/{root.pk}").status_code == 403
    grant = client.post("/api/v1/users", {"username": "sneaky", "is_superuser": True, "is_staff": True}, format="json")
    assert grant.status_code == 403
    plain = UserFactory(username="plain")
    assert client.patch(f"/api/v1/users/{plain.pk}", {"is_staff": True}, format="json").status_code == 403
    plain.refresh_from_db()
    assert not plain.is_staff


def test_admin_cannot_make_a_super_admin_but_a_super_admin_can(db, root):
    admin = _client_for(AdminRole.ADMIN)
    plain = UserFactory(username="plain")
    assert admin.patch(f"/api/v1/users/{plain.pk}", {"is_superuser": True}, format="json").status_code == 403
    assert admin.patch(f"/api/v1/users/{root.pk}", {"first_name": "Eve"}, format="json").status_code == 403
    assert admin.patch(f"/api/v1/users/{plain.pk}", {"first_name": "Pat"}, format="json").status_code == 200
    boss = _client_for(AdminRole.SUPER_ADMIN)
    assert (
        boss.patch(f"/api/v1/users/{plain.pk}", {"is_superuser": True, "is_staff": True}, format="json").status_code
        == 200
    )


def test_help_desk_cannot_change_administrators_groups(db, root):
    from apps.directory.models import Group, Membership

    client = _client_for(AdminRole.HELPDESK)
    plain = UserFactory(username="plain")
    group = GroupFactory(name="Payroll app")
    members_url = f"/api/v1/groups/{group.pk}/members"

    for ids in ([str(root.pk)], [str(client.user.pk)], [str(plain.pk), str(root.pk)]):
        refused = client.post(members_url, {"users": ids}, format="json")
        assert refused.status_code == 403 and "administrators" in refused.json()["detail"]
    assert not Membership.objects.filter(group=group).exists()
    assert client.post(members_url, {"users": [str(plain.pk)]}, format="json").status_code == 201

    directory.group_add_members(actor=None, group=group, users=[root])
    assert client.delete(f"{members_url}/{root.pk}").status_code == 403
    # Replacing the member list would drop the super-admin: refused as a whole, the name unchanged too.
    replaced = client.patch(
        f"/api/v1/groups/{group.pk}", {"name": "Renamed", "members": [str(plain.pk)]}, format="json"
    )
    assert replaced.status_code == 403
    group.refresh_from_db()
    assert group.name == "Payroll app"
    assert set(Membership.objects.filter(group=group).values_list("user__username", flat=True)) == {"plain", "root"}
    # Keeping the administrator where they are is no change to their groups.
    kept = client.patch(f"/api/v1/groups/{group.pk}", {"members": [str(root.pk)]}, format="json")
    assert kept.status_code == 200

    created = client.post("/api/v1/groups", {"name": "Back door", "members": [str(client.user.pk)]}, format="json")
    assert created.status_code == 403 and not Group.objects.filter(name="Back door").exists()


def test_help_desk_cannot_delete_a_group_of_administrators(db, root):
    from apps.directory.models import Group

    client = _client_for(AdminRole.HELPDESK)
    group = GroupFactory(name="With root", members=[root])
    assert client.delete(f"/api/v1/groups/{group.pk}").status_code == 403
    assert Group.objects.filter(pk=group.pk).exists()
    assert client.delete(f"/api/v1/groups/{GroupFactory(name='Plain').pk}").status_code == 204
