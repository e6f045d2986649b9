"""The console's Users pages: list, create, edit, status, delete, resets, roles, and why-access."""

import re

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.connectors import services as connector_services
from apps.console.views.users import PROFILE_FIELDS
from apps.directory import services as directory
from apps.directory.models import AdminRole, User, UserStatus
from apps.portal.models import PortalSession, WebAuthnCredential
from apps.provisioning.models import ObjectType, RemoteObject, SyncStatus
from tests.console.conftest import PASSWORD, console_client, make_staff
from tests.factories import GroupFactory, UserFactory

NEW_PASSWORD = "Another-long-Pass-7731"


def make_connector(name: str, *, deprovision: str = "deactivate", provisioning: bool = True, operations=None):
    if operations is None:
        operations = ["create_users", "update_users", "deactivate_users", "delete_users", "push_groups"]
    return connector_services.connector_create(
        actor=None,
        template="generic-scim",
        name=name,
        enabled=True,
        provisioning={
            "enabled": provisioning,
            "base_url": "http://127.0.0.1:9/scim/v2",
            "token": "test-bearer-token",
            "operations": operations,
            "deprovision": deprovision,
        },
    )


def provisioned(connector, user, *, remote_id: str = "remote-1", status: str = SyncStatus.SYNCED, error: str = ""):
    return RemoteObject.objects.update_or_create(
        connector=connector,
        object_type=ObjectType.USER,
        object_id=user.pk,
        defaults={"remote_id": remote_id, "status": status, "last_error": error, "label": user.username},
    )[0]


def assign(connector, *, user=None, group=None):
    return connector_services.assignment_create(actor=None, connector=connector, user=user, group=group)


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


# --- The list ---------------------------------------------------------------------------------


def _usernames(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return [user.username for user in response.context["users"]]


def test_list_searches_username_email_name_and_employee_id(db, admin_client):
    UserFactory(username="jane.doe", email="jd@corp.example", first_name="Jane", last_name="Doe", employee_id="E-42")
    UserFactory(username="bob", email="bob@else.example", first_name="Robert", last_name="Smith", employee_id="E-7")
    assert _usernames(admin_client.get("/console/users/?q=jane")) == ["jane.doe"]
    assert _usernames(admin_client.get("/console/users/?q=corp.example")) == ["jane.doe"]
    assert _usernames(admin_client.get("/console/users/?q=Smith")) == ["bob"]
    assert _usernames(admin_client.get("/console/users/?q=E-7")) == ["bob"]
    empty = admin_client.get("/console/users/?q=nobody-like-this")
    assert _usernames(empty) == []
    assert "No user matches" in empty.content.decode()


def test_list_filters_by_status_group_and_connector(db, admin_client):
    active = UserFactory(username="active.one")
    suspended = UserFactory(username="suspended.one")
    directory.user_suspend(actor=None, user=suspended)
    staged = UserFactory(username="staged.one", status=UserStatus.STAGED)
    group = GroupFactory(name="Engineering", members=[active, staged])
    connector = make_connector("Slack")
    assign(connector, group=group)
    direct = UserFactory(username="direct.one")
    assign(connector, user=direct)

    assert _usernames(admin_client.get("/console/users/?status=suspended")) == ["suspended.one"]
    assert _usernames(admin_client.get(f"/console/users/?group={group.pk}")) == ["active.one", "staged.one"]
    by_connector = _usernames(admin_client.get(f"/console/users/?connector={connector.slug}"))
    assert by_connector == ["active.one", "direct.one", "staged.one"]
    both = _usernames(admin_client.get(f"/console/users/?connector={connector.slug}&status=staged"))
    assert both == ["staged.one"]
    # An unknown filter value is a 400 with the field named, never a 500.
    bad = admin_client.get("/console/users/?status=deleted")
    assert bad.status_code == 400
    assert "Select a valid choice" in bad.content.decode()


def _queries_for_list(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_list_query_count_does_not_grow_with_rows(db, admin_client, django_assert_max_num_queries):
    groups = [GroupFactory(name=f"Team {n}") for n in range(3)]
    for n in range(5):
        UserFactory(username=f"small{n}")
    few = _queries_for_list(admin_client, "/console/users/")
    for n in range(70):
        directory.group_add_members(actor=None, group=groups[n % 3], users=[UserFactory(username=f"many{n:02}")])
    many = _queries_for_list(admin_client, "/console/users/")
    assert many <= few  # the first request also fills the settings cache (the sign-in policy)
    with django_assert_max_num_queries(few):
        response = admin_client.get("/console/users/?status=active&q=many")
    assert len(response.context["users"]) == 50
    # A search is never counted in full: it reads one row past the page to know there is a next one.
    assert response.context["page_obj"].paginator.count is None and response.context["page_obj"].has_next()
    assert "Page 1" in response.content.decode() and "Next" in response.content.decode()
    page_two = admin_client.get("/console/users/?q=many&page=2")
    assert len(page_two.context["users"]) == 20 and not page_two.context["page_obj"].has_next()
    assert page_two.context["page_obj"].paginator.count == 70
    past_the_end = admin_client.get("/console/users/?q=many&page=7")
    assert past_the_end.context["page_obj"].number == 2
    assert admin_client.get("/console/users/?q=many&page=x").context["page_obj"].number == 1
    plain = admin_client.get("/console/users/?status=active")
    assert plain.context["page_obj"].paginator.count == 5 + 70 + 1  # and the admin


def test_search_reads_at_most_the_cap_and_says_so(db, admin_client, monkeypatch, django_assert_max_num_queries):
    from apps.directory import selectors as users_view

    for n in range(12):
        UserFactory(username=f"capped{n:02}")
    monkeypatch.setattr(users_view, "SEARCH_RESULT_CAP", 10)
    with django_assert_max_num_queries(_queries_for_list(admin_client, "/console/users/?q=capped00")):
        response = admin_client.get("/console/users/?q=capped")
    assert [user.username for user in response.context["users"]] == [f"capped{n:02}" for n in range(10)]
    assert response.context["capped"]
    assert "More than 10 users match" in response.content.decode()


def test_connector_filter_matches_users_in_scope(db):
    from apps.connectors.selectors import users_in_scope, users_in_scope_q
    from apps.directory.selectors import user_directory_list

    people = [UserFactory(username=f"s{n}") for n in range(8)]
    connector = make_connector("Scope")
    assign(connector, group=GroupFactory(name="In", members=people[:3]))
    assign(connector, group=GroupFactory(name="Also in", members=people[2:5]))
    assign(connector, user=people[6])
    GroupFactory(name="Out", members=people[5:])
    expected = list(users_in_scope(connector).values_list("username", flat=True))
    filtered = user_directory_list().filter(users_in_scope_q(connector))
    assert list(filtered.values_list("username", flat=True)) == expected == ["s0", "s1", "s2", "s3", "s4", "s6"]


# --- Permissions ------------------------------------------------------------------------------


def test_read_only_sees_but_every_post_is_refused(db, readonly_client):
    target = UserFactory(username="target")
    assert readonly_client.get("/console/users/").status_code == 200
    detail = readonly_client.get(f"/console/users/{target.pk}/")
    assert detail.status_code == 200
    assert "Reset MFA" not in detail.content.decode()
    base = f"/console/users/{target.pk}"
    for url in (
        "/console/users/new/",
        f"{base}/edit/",
        f"{base}/suspend/",
        f"{base}/reactivate/",
        f"{base}/delete/",
        f"{base}/password/",
        f"{base}/mfa/reset/",
        f"{base}/unlock/",
        f"{base}/role/",
    ):
        assert readonly_client.post(url, {"username": "x", "action": "email"}).status_code == 403, url
    assert readonly_client.get("/console/users/new/").status_code == 403
    target.refresh_from_db()
    assert target.status == UserStatus.ACTIVE


def test_help_desk_manages_people_but_not_staff_or_roles(db, helpdesk_client):
    person = UserFactory(username="person")
    staff = make_staff(AdminRole.READONLY, "some.auditor")
    assert helpdesk_client.get(f"/console/users/{person.pk}/edit/").status_code == 200
    assert helpdesk_client.post(f"/console/users/{person.pk}/suspend/").status_code == 302
    person.refresh_from_db()
    assert person.status == UserStatus.SUSPENDED
    for suffix in ("edit/", "suspend/", "delete/", "password/", "mfa/reset/", "unlock/"):
        assert helpdesk_client.post(f"/console/users/{staff.pk}/{suffix}").status_code == 403, suffix
    assert helpdesk_client.get(f"/console/users/{staff.pk}/edit/").status_code == 403
    assert "Reset MFA" not in helpdesk_client.get(f"/console/users/{staff.pk}/").content.decode()
    assert helpdesk_client.get(f"/console/users/{person.pk}/role/").status_code == 403


def test_admin_cannot_change_a_super_admin_or_roles(db, admin_client, super_admin):
    assert admin_client.post(f"/console/users/{super_admin.pk}/suspend/").status_code == 403
    person = UserFactory(username="person")
    assert admin_client.get(f"/console/users/{person.pk}/role/").status_code == 403


def test_csrf_is_required(db, admin):
    person = UserFactory(username="person")
    client = console_client(admin)
    client.handler.enforce_csrf_checks = True
    assert client.post(f"/console/users/{person.pk}/suspend/").status_code == 403
    person.refresh_from_db()
    assert person.status == UserStatus.ACTIVE


def test_signed_out_client_is_sent_to_sign_in(db):
    response = Client().get("/console/users/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# --- Create and edit ---------------------------------------------------------------------------


def test_create_with_reset_email_is_audited(db, admin, admin_client):
    response = admin_client.post(
        "/console/users/new/",
        {
            "username": "new.person",
            "email": "new.person@example.com",
            "first_name": "New",
            "last_name": "Person",
            "status": "active",
            "send_reset": "on",
        },
    )
    created = User.objects.get(username="new.person")
    assert response.status_code == 302
    assert response["Location"] == f"/console/users/{created.pk}/"
    assert created.display_name == "New Person"
    assert not created.has_usable_password()
    event = last_event("user.create")
    assert event.actor == admin and event.target_id == str(created.pk)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.person@example.com"]
    assert re.search(r"/password-reset/[^/]+/[^/]+/", mail.outbox[0].body)
    assert last_event("portal.password_reset.sent").actor == admin
    page = admin_client.get(response["Location"])
    assert "new.person was created." in page.content.decode()


def test_create_shows_duplicates_on_their_fields_and_writes_nothing(db, admin_client):
    UserFactory(username="taken", email="taken@example.com")
    before = AuditEvent.objects.count()
    response = admin_client.post(
        "/console/users/new/", {"username": "TAKEN", "email": "Taken@Example.com", "status": "active"}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert "already exists" in form.errors["username"][0]
    assert "already exists" in form.errors["email"][0]
    assert User.objects.filter(username__iexact="taken").count() == 1
    assert AuditEvent.objects.count() == before
    html = response.content.decode()
    assert 'id="id_username_error"' in html and 'id="id_email_error"' in html


def test_create_applies_the_password_policy(db, admin_client):
    response = admin_client.post("/console/users/new/", {"username": "weak", "status": "active", "password": "abc"})
    assert response.status_code == 400
    assert "too short" in response.context["form"].errors["password"][0]
    assert not User.objects.filter(username="weak").exists()
    assert 'value="abc"' not in response.content.decode()


def test_edit_saves_changes_and_shows_field_errors(db, admin, admin_client):
    UserFactory(username="other", email="other@example.com")
    person = UserFactory(username="person", email="person@example.com", first_name="Per")
    url = f"/console/users/{person.pk}/edit/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert 'value="person@example.com"' in page.content.decode()
    fields = {name: getattr(person, name) for name in PROFILE_FIELDS}
    bad = admin_client.post(url, {**fields, "email": "OTHER@example.com", "first_name": "Pat"})
    assert bad.status_code == 400
    assert "already exists" in bad.context["form"].errors["email"][0]
    person.refresh_from_db()
    assert person.first_name == "Per"
    invalid = admin_client.post(url, {**fields, "username": "has space"})
    assert invalid.status_code == 400
    assert "username" in invalid.context["form"].errors
    good = admin_client.post(url, {**fields, "first_name": "Pat"})
    assert good.status_code == 302
    person.refresh_from_db()
    assert person.first_name == "Pat"
    event = last_event("user.update")
    assert event.actor == admin and event.after == {"first_name": "Pat", "display_name": person.display_name}


# --- Status, delete ----------------------------------------------------------------------------


def test_suspend_and_reactivate_are_audited(db, admin, admin_client):
    person = UserFactory(username="person")
    response = admin_client.post(f"/console/users/{person.pk}/suspend/", follow=True)
    assert "is suspended" in response.content.decode()
    person.refresh_from_db()
    assert person.status == UserStatus.SUSPENDED
    assert last_event("user.suspend").actor == admin
    admin_client.post(f"/console/users/{person.pk}/reactivate/")
    person.refresh_from_db()
    assert person.status == UserStatus.ACTIVE
    assert last_event("user.reactivate").actor == admin
    assert admin_client.get(f"/console/users/{person.pk}/suspend/").status_code == 405


def test_a_super_admin_suspends_another_super_admin(db, super_admin, super_client):
    # The last-super-admin rule cannot be reached here (only a super-admin may change one, and nobody
    # suspends themselves); it is shown on the role page, where demoting oneself is allowed.
    other = make_staff(AdminRole.SUPER_ADMIN, "second.super")
    assert super_client.post(f"/console/users/{other.pk}/suspend/").status_code == 302
    other.refresh_from_db()
    assert other.status == UserStatus.SUSPENDED


def test_nobody_suspends_their_own_account(db, admin, admin_client):
    response = admin_client.post(f"/console/users/{admin.pk}/suspend/", follow=True)
    assert "cannot suspend your own account" in response.content.decode()
    admin.refresh_from_db()
    assert admin.status == UserStatus.ACTIVE


def test_delete_confirmation_names_what_is_deprovisioned_where(db, admin, admin_client):
    person = UserFactory(username="leaver")
    deleting = make_connector("Deleting App", deprovision="delete")
    deactivating = make_connector("Deactivating App", deprovision="deactivate")
    switched_off = make_connector("Careful App", deprovision="delete", operations=["create_users"])
    unprovisioned = make_connector("Not Yet App")
    for connector in (deleting, deactivating, switched_off, unprovisioned):
        assign(connector, user=person)
    provisioned(deleting, person, remote_id="del-1")
    provisioned(deactivating, person, remote_id="deact-1")
    provisioned(switched_off, person, remote_id="keep-1")
    url = f"/console/users/{person.pk}/delete/"
    page = admin_client.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    rows = {row.split("</td>")[0]: row for row in html.split("<tr>\n        <td>")[1:]}
    assert "DELETE" in rows["Deleting App"] and "del-1" in rows["Deleting App"]
    assert "deactivated in the app" in rows["Deactivating App"]
    assert "Nothing sent" in rows["Careful App"] and "Delete users" in rows["Careful App"]
    assert "Not Yet App" not in rows
    assert User.objects.filter(pk=person.pk).exists()

    response = admin_client.post(url)
    assert response.status_code == 302 and response["Location"] == "/console/users/"
    assert not User.objects.filter(pk=person.pk).exists()
    event = last_event("user.delete")
    assert event.actor == admin and event.before["username"] == "leaver"


def test_delete_confirmation_without_provisioning(db, admin_client):
    person = UserFactory(username="quiet")
    html = admin_client.get(f"/console/users/{person.pk}/delete/").content.decode()
    assert "nothing is deprovisioned anywhere" in html


def test_an_admin_cannot_delete_their_own_account(db, admin, admin_client):
    response = admin_client.post(f"/console/users/{admin.pk}/delete/", follow=True)
    assert "cannot delete your own account" in response.content.decode()
    assert User.objects.filter(pk=admin.pk).exists()


# --- Password, MFA, lockout --------------------------------------------------------------------


def test_reset_password_by_email(db, helpdesk, helpdesk_client):
    person = UserFactory(username="forgetful", email="forgetful@example.com")
    page = helpdesk_client.get(f"/console/users/{person.pk}/password/")
    assert "forgetful@example.com" in page.content.decode()
    response = helpdesk_client.post(f"/console/users/{person.pk}/password/", {"action": "email"}, follow=True)
    assert "reset link was emailed" in response.content.decode()
    assert mail.outbox[-1].to == ["forgetful@example.com"]
    assert last_event("portal.password_reset.sent").actor == helpdesk


def test_temporary_password_follows_the_policy(db, admin, admin_client):
    person = UserFactory(username="temp", password=PASSWORD)
    url = f"/console/users/{person.pk}/password/"
    weak = admin_client.post(url, {"action": "set", "password1": "short", "password2": "short"})
    assert weak.status_code == 400
    assert weak.context["form"].errors["password1"]
    differ = admin_client.post(url, {"action": "set", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"})
    assert "differ" in differ.context["form"].errors["password2"][0]
    person.refresh_from_db()
    assert person.check_password(PASSWORD)
    their_session = Client()
    their_session.post("/login/", {"username": "temp", "password": PASSWORD})
    assert PortalSession.objects.filter(user=person).count() == 1
    done = admin_client.post(url, {"action": "set", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    person.refresh_from_db()
    assert person.check_password(NEW_PASSWORD)
    assert last_event("user.set_password").actor == admin
    assert not PortalSession.objects.filter(user=person).exists()
    assert last_event("portal.logout_everywhere").actor == admin
    html = admin_client.get(done["Location"]).content.decode()
    assert NEW_PASSWORD not in html


def test_reset_mfa_removes_every_factor_and_is_audited(db, admin, admin_client):
    person = UserFactory(username="lost.phone")
    TOTPDevice.objects.create(user=person, name="Authenticator app", confirmed=True)
    device = StaticDevice.objects.create(user=person, name="Recovery codes", confirmed=True)
    StaticToken.objects.bulk_create([StaticToken(device=device, token=f"code{n}") for n in range(3)])
    WebAuthnCredential.objects.create(user=person, name="YubiKey", credential_id="abc", public_key="k", confirmed=True)
    page = admin_client.get(f"/console/users/{person.pk}/").content.decode()
    assert "3 left" in page and "YubiKey" in page
    response = admin_client.post(f"/console/users/{person.pk}/mfa/reset/", follow=True)
    assert "1 authenticator app(s), 3 recovery code(s), 1 passkey(s)" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=person).exists()
    assert not StaticDevice.objects.filter(user=person).exists()
    assert not WebAuthnCredential.objects.filter(user=person).exists()
    event = last_event("portal.mfa.reset")
    assert event.actor == admin and event.after == {"totp": 1, "recovery_codes": 3, "passkeys": 1}


def test_unlock_clears_the_lockout(db, admin, admin_client):
    from axes.models import AccessAttempt

    person = UserFactory(username="locked")
    AccessAttempt.objects.create(
        username="locked", ip_address="203.0.113.9", user_agent="x", get_data="", post_data="", failures_since_start=9
    )
    response = admin_client.post(f"/console/users/{person.pk}/unlock/", follow=True)
    assert "may sign in again (1 failed attempt(s) cleared)" in response.content.decode()
    assert not AccessAttempt.objects.filter(username="locked").exists()
    assert last_event("portal.unlock").actor == admin


# --- Roles -------------------------------------------------------------------------------------


def test_role_change_needs_a_recent_sign_in(db, super_admin):
    person = UserFactory(username="promoted")
    stale = console_client(super_admin, signed_in_seconds_ago=1000)
    response = stale.get(f"/console/users/{person.pk}/role/")
    assert response.status_code == 302 and response["Location"].startswith("/console/confirm/")
    assert stale.post(f"/console/users/{person.pk}/role/", {"role": "admin"}).status_code == 302
    person.refresh_from_db()
    assert person.console_role == ""


def test_super_admin_changes_a_role(db, super_admin, super_client):
    person = UserFactory(username="promoted")
    page = super_client.get(f"/console/users/{person.pk}/role/")
    assert page.status_code == 200
    assert '<label for="id_role_2">Help desk</label>' in page.content.decode()
    response = super_client.post(f"/console/users/{person.pk}/role/", {"role": "helpdesk"})
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.console_role == AdminRole.HELPDESK
    event = last_event("user.role_change")
    assert event.actor == super_admin and event.after == {"admin_role": "helpdesk"}
    bad = super_client.post(f"/console/users/{person.pk}/role/", {"role": "overlord"})
    assert bad.status_code == 400 and bad.context["form"].errors["role"]


def test_the_last_super_admin_cannot_be_demoted(db, super_admin, super_client):
    response = super_client.post(f"/console/users/{super_admin.pk}/role/", {"role": "admin"})
    assert response.status_code == 400
    assert "last active super-admin" in response.context["form"].errors["role"][0]
    super_admin.refresh_from_db()
    assert super_admin.console_role == AdminRole.SUPER_ADMIN


# --- The user's page ---------------------------------------------------------------------------


def test_detail_says_why_the_user_has_access(db, admin_client):
    person = UserFactory(username="worker")
    engineering = GroupFactory(name="Engineering", members=[person])
    oncall = GroupFactory(name="On-call", members=[person])
    GroupFactory(name="Sales")
    github = make_connector("GitHub")
    assign(github, group=engineering)
    assign(github, group=oncall)
    assign(github, user=person)
    pagerduty = make_connector("PagerDuty", provisioning=False)
    assign(pagerduty, group=oncall)
    make_connector("Unrelated")
    access = {
        path.connector.name: path for path in admin_client.get(f"/console/users/{person.pk}/").context["access_paths"]
    }
    assert set(access) == {"GitHub", "PagerDuty"}
    assert access["GitHub"].direct and [group.name for group in access["GitHub"].groups] == ["Engineering", "On-call"]
    assert not access["PagerDuty"].direct and [group.name for group in access["PagerDuty"].groups] == ["On-call"]
    html = admin_client.get(f"/console/users/{person.pk}/").content.decode()
    assert "Direct assignment" in html and "Sales" not in html


def test_detail_shows_provisioning_state_and_sign_ins(db, admin_client):
    person = UserFactory(username="watched")
    connector = make_connector("Zoom")
    provisioned(connector, person, remote_id="zoom-77", status=SyncStatus.FAILED, error="The app refused: email taken.")
    audit_record(actor=person, action="portal.login.success", target=person, after={"method": "password"})
    audit_record(actor=person, action="portal.mfa.failure", target=person)
    audit_record(actor=None, action="portal.lockout", target=person)
    audit_record(actor=person, action="user.update", target=person)
    response = admin_client.get(f"/console/users/{person.pk}/")
    html = response.content.decode()
    assert "zoom-77" in html and "The app refused: email taken." in html
    assert [event.action for event in response.context["sign_ins"]] == [
        "portal.lockout",
        "portal.mfa.failure",
        "portal.login.success",
    ]
    assert "Locked out" in html and "Wrong code" in html


def test_detail_has_a_fixed_number_of_queries(db, admin_client, django_assert_max_num_queries):
    person = UserFactory(username="busy")
    for n in range(4):
        group = GroupFactory(name=f"G{n}", members=[person])
        connector = make_connector(f"App {n}")
        assign(connector, group=group)
        provisioned(connector, person, remote_id=f"r{n}")
    with django_assert_max_num_queries(20):
        response = admin_client.get(f"/console/users/{person.pk}/")
    assert len(response.context["access_paths"]) == 4


@pytest.mark.parametrize("path", ["/console/users/", "/console/users/new/"])
def test_pages_carry_no_inline_script_or_style(db, admin_client, path):
    html = admin_client.get(path).content.decode()
    assert "<script>" not in html and 'style="' not in html and " onclick=" not in html


def test_postgresql_has_trigram_indexes_for_the_search(db):
    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes exist on PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'directory_user' AND indexname LIKE '%%_trgm'"
        )
        names = {row[0] for row in cursor.fetchall()}
    searched = ("username", "email", "first_name", "last_name", "display_name")  # display_name: the API's search
    assert names == {f"directory_user_{column}_trgm" for column in searched}


# --- The user's page tells the truth about access and what each app holds (issue 14) -------------


def test_a_suspended_users_page_shows_no_access_and_what_the_app_was_last_told(admin_client):
    from apps.connectors.services import assignment_create
    from tests.provisioning.downstream import FaultyScimServer
    from tests.provisioning.helpers import make_connector as provisioning_connector
    from tests.provisioning.helpers import run

    app = FaultyScimServer().start()
    try:
        connector = provisioning_connector(app, name="Twingate")
        engineering = GroupFactory(name="Engineering")
        jane = UserFactory(username="jane.doe")
        directory.group_add_members(actor=None, group=engineering, users=[jane])
        assignment_create(actor=None, connector=connector, group=engineering)
        run(connector)
        page = admin_client.get(f"/console/users/{jane.pk}/").content.decode()
        assert "Can sign in" in page and "Active in Twingate" in page

        directory.user_suspend(actor=None, user=jane)
        run(connector)
        assert [request.body for request in app.requests if request.method in ("PATCH", "PUT")][-1] is not None
        page = " ".join(admin_client.get(f"/console/users/{jane.pk}/").content.decode().split())
    finally:
        app.close()

    assert "Can sign in" not in page and "No access" in page and "the account is suspended" in page
    assert "Deactivated in Twingate (active=false) at" in page
    assert ">Synced<" not in page


def test_the_group_filter_lists_the_first_groups_and_keeps_the_one_chosen(admin_client, monkeypatch):
    from apps.console.views import users as user_views

    monkeypatch.setattr(user_views, "GROUP_FILTER_CHOICES", 2)
    for name in ("Alpha", "Beta", "Gamma"):
        GroupFactory(name=name)
    zulu = GroupFactory(name="Zulu", members=[UserFactory(username="zed")])

    listed = admin_client.get("/console/users/").context["form"].fields["group"].choices
    assert [name for _, name in listed] == ["Any group", "Alpha", "Beta"]
    page = admin_client.get(f"/console/users/?group={zulu.pk}")
    assert page.status_code == 200
    assert [name for _, name in page.context["form"].fields["group"].choices][-1] == "Zulu"
    assert [account.username for account in page.context["users"]] == ["zed"]
