"""Console and API roles: the staff-rank rule holds in the directory's services, for every caller.

Whoever reaches `apps.directory.services` (console, admin API, SCIM, Bulk, CSV import, a Celery task)
meets `apps.directory.roles.require_reach`: the attacks below call each service as a lower-ranked
caller would and assert the refusal and that nothing changed.
"""

from collections.abc import Callable

import pytest
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.api.services import api_token_create
from apps.audit.models import AuditEvent
from apps.audit.services import SystemActor
from apps.directory import imports
from apps.directory import services as directory
from apps.directory.models import AdminRole, Group, GroupImportJob, ImportStatus, Membership, User
from apps.directory.roles import StaffAccountProtected
from apps.portal import lockout, passwords
from apps.portal import services as portal
from tests.conftest import wait_for
from tests.factories import GroupFactory, UserFactory
from tests.security.conftest import make_person, signed_in

pytestmark = pytest.mark.django_db

TOKEN = SystemActor(label="scim:hr")
STAFF_TOKEN = SystemActor(label="scim:workday", manages_staff=True)
NEW_PASSWORD = "Owned-Passw0rd-2026"


def _state(user: User) -> tuple:
    fresh = User.objects.get(pk=user.pk)
    return (
        fresh.email,
        fresh.first_name,
        fresh.status,
        fresh.password,
        fresh.admin_role,
        fresh.is_superuser,
        sorted(str(pk) for pk in Membership.objects.filter(user=fresh).values_list("group_id", flat=True)),
        TOTPDevice.objects.filter(user=fresh).count(),
    )


def _attacks(group: Group) -> dict[str, Callable]:
    """Every directory change to a staff account, as (actor, target) -> call."""
    return {
        "update": lambda actor, target: directory.user_update(actor=actor, user=target, email="evil@attacker.example"),
        "suspend": lambda actor, target: directory.user_suspend(actor=actor, user=target),
        "set_status": lambda actor, target: directory.user_set_status(actor=actor, user=target, status="staged"),
        "password": lambda actor, target: directory.user_set_password(
            actor=actor, user=target, password="Owned-Passw0rd-2026"
        ),
        "role": lambda actor, target: directory.user_set_admin_role(actor=actor, user=target, role=AdminRole.READONLY),
        "delete": lambda actor, target: directory.user_delete(actor=actor, user=target),
        "add_to_group": lambda actor, target: directory.group_add_members(actor=actor, group=group, users=[target]),
        "mfa_reset": lambda actor, target: portal.mfa_reset(actor=actor, user=target),
        "reset_email": lambda actor, target: passwords.password_reset_send(actor=actor, user=target),
        "unlock": lambda actor, target: lockout.portal_unlock(actor=actor, user=target),
    }


@pytest.mark.parametrize("attack", list(_attacks(Group()).keys()))
@pytest.mark.parametrize(
    ("actor_role", "target_role"),
    [
        ("token", AdminRole.SUPER_ADMIN),
        ("token", AdminRole.READONLY),
        (AdminRole.HELPDESK, AdminRole.ADMIN),
        (AdminRole.HELPDESK, AdminRole.HELPDESK),
        (AdminRole.ADMIN, AdminRole.SUPER_ADMIN),
        (AdminRole.READONLY, AdminRole.READONLY),
    ],
)
def test_lower_rank_cannot_change_a_staff_account_through_any_service(attack, actor_role, target_role):
    target = make_person("target.staff", role=target_role)
    make_person("spare.super", role=AdminRole.SUPER_ADMIN)  # so the last-super-admin rule is not what refuses
    actor = TOKEN if actor_role == "token" else make_person("the.actor", role=actor_role)
    group = GroupFactory(name="Payroll app")
    before, events = _state(target), AuditEvent.objects.count()

    with pytest.raises(StaffAccountProtected) as refused:
        _attacks(group)[attack](actor, target)

    assert target.username in refused.value.message
    assert _state(target) == before
    assert AuditEvent.objects.count() == events
    assert mail.outbox == []


@pytest.mark.parametrize("attack", ["update", "suspend", "password", "add_to_group", "mfa_reset", "unlock"])
@pytest.mark.parametrize("actor_kind", ["staff_token", "super_admin", "same_rank_admin", "portal"])
def test_who_may_change_staff_still_can(attack, actor_kind):
    target = make_person("target.admin", role=AdminRole.ADMIN)
    actor = {
        "staff_token": STAFF_TOKEN,
        "super_admin": make_person("the.super", role=AdminRole.SUPER_ADMIN),
        "same_rank_admin": make_person("other.admin", role=AdminRole.ADMIN),
        "portal": None,
    }[actor_kind]
    _attacks(GroupFactory(name="Finance"))[attack](actor, target)


def test_a_help_desk_changes_its_own_password_but_not_its_own_groups():
    helpdesk = make_person("hal.helpdesk", role=AdminRole.HELPDESK)
    directory.user_set_password(actor=helpdesk, user=helpdesk, password="Another-G00d-one")
    with pytest.raises(StaffAccountProtected):
        directory.group_add_members(actor=helpdesk, group=GroupFactory(name="Admins' apps"), users=[helpdesk])


def test_creating_a_staff_account_takes_the_rank_of_its_role():
    with pytest.raises(StaffAccountProtected):
        directory.user_create(actor=TOKEN, username="new.super", is_staff=True, is_superuser=True)
    admin = make_person("ada.admin", role=AdminRole.ADMIN)
    with pytest.raises(StaffAccountProtected):
        directory.user_create(actor=admin, username="new.super", is_staff=True, is_superuser=True)
    assert not User.objects.filter(username="new.super").exists()


def test_promoting_through_a_profile_update_is_refused_past_the_actors_rank():
    admin = make_person("ada.admin", role=AdminRole.ADMIN)
    plain = UserFactory(username="plain")
    with pytest.raises(StaffAccountProtected):
        directory.user_update(actor=admin, user=plain, is_staff=True, is_superuser=True)
    assert not User.objects.get(pk=plain.pk).is_superuser


def test_group_delete_is_refused_while_it_holds_staff_beyond_reach():
    helpdesk = make_person("hal.helpdesk", role=AdminRole.HELPDESK)
    admin = make_person("ada.admin", role=AdminRole.ADMIN)
    group = GroupFactory(name="Admins")
    directory.group_add_members(actor=None, group=group, users=[admin])
    for actor in (helpdesk, TOKEN):
        with pytest.raises(StaffAccountProtected):
            directory.group_delete(actor=actor, group=group)
    assert Group.objects.filter(pk=group.pk).exists()
    directory.group_delete(actor=STAFF_TOKEN, group=group)
    assert not Group.objects.filter(pk=group.pk).exists()


# --- The same rule through each entry point ------------------------------------------------------


def test_console_help_desk_cannot_reset_an_admins_mfa_or_password(db):
    helpdesk = make_person("hal.helpdesk", role=AdminRole.HELPDESK)
    admin = make_person("ada.admin", role=AdminRole.ADMIN)
    client = signed_in(helpdesk)
    before = _state(admin)
    for path in ("mfa/reset", "unlock", "suspend", "delete"):
        response = client.post(f"/console/users/{admin.pk}/{path}/")
        assert response.status_code == 403, (path, response.status_code)
    assert _state(admin) == before


def test_api_admin_cannot_change_a_super_admin(db):
    admin = make_person("ada.admin", role=AdminRole.ADMIN)
    boss = make_person("the.boss", role=AdminRole.SUPER_ADMIN)
    _, secret = api_token_create(actor=None, user=admin, name="terraform")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    before = _state(boss)

    patched = api.patch(f"/api/v1/users/{boss.pk}", {"email": "evil@attacker.example"}, format="json")
    assert patched.status_code == 403 and patched.json()["code"] == "staff_account_protected"
    assert api.delete(f"/api/v1/users/{boss.pk}").status_code == 403
    group = GroupFactory(name="Everyone")
    added = api.post(f"/api/v1/groups/{group.pk}/members", {"users": [str(boss.pk)]}, format="json")
    assert added.status_code == 403
    assert _state(boss) == before


def test_csv_import_by_help_desk_skips_administrators_in_the_celery_task(celery_worker_process, transactional_db):
    helpdesk = make_person("hal.helpdesk", role=AdminRole.HELPDESK)
    admin = make_person("ada.admin", role=AdminRole.ADMIN)
    UserFactory(username="plain.one")
    group = GroupFactory(name="Imported")

    job = imports.group_import_start(
        actor=helpdesk, group=group, filename="people.csv", content=b"username\nplain.one\nada.admin\nhal.helpdesk\n"
    )

    job = wait_for(
        lambda: GroupImportJob.objects.filter(pk=job.pk, status=ImportStatus.DONE).first(),
        timeout=60,
        message="the import job to finish in the worker",
    )
    assert set(Membership.objects.filter(group=group).values_list("user__username", flat=True)) == {"plain.one"}
    assert job.refused_count == 2
    assert admin.username in str(job.refused_rows)
