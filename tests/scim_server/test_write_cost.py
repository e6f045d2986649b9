"""What a SCIM write sends to the database: the user read once (under its row lock), written once
with only the columns that changed, uniqueness left to the constraints, and the same errors as
before when they refuse."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.directory import services
from apps.directory.models import User, UserStatus
from tests.factories import GroupFactory, UserFactory
from tests.scim_server.conftest import assert_scim_error, make_scim_client, user_body

pytestmark = pytest.mark.django_db

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def _statements(scim, send) -> list[str]:
    scim.get("ServiceProviderConfig")  # the token's last use is recorded now, not in the write
    with CaptureQueriesContext(connection) as captured:
        response = send()
    assert response.status_code in (200, 201), response.content
    return [query["sql"] for query in captured.captured_queries if not query["sql"].startswith(_TRANSACTION_CONTROL)]


def _on_users(statements: list[str]) -> list[str]:
    return [sql for sql in statements if re.search(r'(FROM|INTO|UPDATE) "directory_user"', sql)]


def test_patch_of_one_attribute_reads_the_user_once_and_writes_only_what_changed(scim):
    user = UserFactory(username="cost.patch", first_name="Old", last_name="Name")
    statements = _statements(
        scim, lambda: scim.patch_ops(f"Users/{user.pk}", {"op": "replace", "path": "name.givenName", "value": "New"})
    )
    read, update, *reports = _on_users(statements)
    assert read.startswith("SELECT") and update.startswith("UPDATE")
    assert all('WHERE "directory_user"."manager_id" =' in sql for sql in reports), reports
    if connection.features.has_select_for_update:
        assert "FOR UPDATE" in read
    written = re.search(r"SET (.*) WHERE", update).group(1)
    assert "first_name" in written and "display_name" in written
    assert "password" not in written and "username" not in written and "email" not in written
    # The token, the user, its update, the audit row, the provisioning check, (the display name
    # changed) the reports whose manager.displayName changes with it, and which group rules read
    # what changed: nothing else.
    assert len(statements) <= 6, statements
    user.refresh_from_db()
    assert (user.first_name, user.display_name) == ("New", "New Name")
    assert AuditEvent.objects.get(action="user.update", target_id=str(user.pk)).after == {
        "first_name": "New",
        "display_name": "New Name",
    }


def test_patch_deactivation_reads_the_user_once(scim):
    user = UserFactory(username="cost.suspend")
    statements = _statements(
        scim, lambda: scim.patch_ops(f"Users/{user.pk}", {"op": "replace", "path": "active", "value": False})
    )
    assert [sql.split()[0] for sql in _on_users(statements)] == ["SELECT", "UPDATE"]
    user.refresh_from_db()
    assert user.status == UserStatus.SUSPENDED
    assert AuditEvent.objects.filter(action="user.suspend", target_id=str(user.pk)).exists()


def test_post_inserts_the_user_without_looking_up_uniqueness_first(scim):
    statements = _statements(scim, lambda: scim.post("Users", user_body("cost.post")))
    assert [sql.split()[0] for sql in _on_users(statements)] == ["INSERT"]
    # The token, the custom attribute definitions (a new user must have the required ones), the
    # insert, the audit row, the provisioning check and the group rules a new user may match.
    assert len(statements) <= 6, statements
    user = User.objects.get(username="cost.post")
    assert AuditEvent.objects.filter(action="user.create", target_id=str(user.pk)).exists()


def test_post_clashing_on_username_and_email_names_both_and_writes_nothing(scim):
    UserFactory(username="taken.user", email="taken@example.com")
    events = AuditEvent.objects.count()
    body = assert_scim_error(
        scim.post("Users", user_body("TAKEN.user", emails=[{"value": "Taken@example.com", "primary": True}])),
        409,
        "uniqueness",
    )
    assert "userName" in body["detail"] and "emails" in body["detail"]
    assert User.objects.filter(username__iexact="taken.user").count() == 1
    assert AuditEvent.objects.count() == events


def test_patch_to_a_taken_username_is_409_and_changes_nothing(scim):
    UserFactory(username="first.owner")
    user = UserFactory(username="second.user")
    before = (user.username, user.updated)
    events = AuditEvent.objects.count()
    body = assert_scim_error(
        scim.patch_ops(f"Users/{user.pk}", {"op": "replace", "path": "userName", "value": "FIRST.owner"}),
        409,
        "uniqueness",
    )
    assert "userName" in body["detail"]
    user.refresh_from_db()
    assert (user.username, user.updated) == before
    assert AuditEvent.objects.count() == events


def test_the_locked_read_keeps_a_group_scoped_tokens_limits(db):
    group = GroupFactory(name="Scoped writers")
    inside, outside = UserFactory(username="in.scope"), UserFactory(username="out.of.scope")
    services.group_add_members(actor=None, group=group, users=[inside])
    client = make_scim_client("scoped", scope_group=group)
    rename = {"op": "replace", "path": "displayName", "value": "Renamed"}
    patched = client.patch_ops(f"Users/{inside.pk}", rename)
    assert patched.status_code == 200 and patched.json()["groups"][0]["value"] == str(group.pk)
    assert_scim_error(client.patch_ops(f"Users/{outside.pk}", rename), 404)
    assert_scim_error(client.put(f"Users/{outside.pk}", user_body("out.of.scope")), 404)
    outside.refresh_from_db()
    assert outside.display_name != "Renamed"


def test_patch_of_a_user_with_a_manager_reads_the_user_and_its_manager_in_one_query(scim):
    boss = UserFactory(username="cost.boss", display_name="Cost Boss")
    user = UserFactory(username="cost.report", manager=boss)
    statements = _statements(
        scim, lambda: scim.patch_ops(f"Users/{user.pk}", {"op": "replace", "path": "title", "value": "Analyst"})
    )
    assert [sql.split()[0] for sql in _on_users(statements)] == ["SELECT", "UPDATE"]
    document = scim.get(f"Users/{user.pk}").json()
    assert document["title"] == "Analyst"
    assert (
        document["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["displayName"] == "Cost Boss"
    )
