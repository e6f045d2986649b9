"""Directory write services: validation, one transaction, exactly one audit event, invariants."""

import json
import uuid

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.common.errors import ApplicationError
from apps.directory import services
from apps.directory.models import Group, Membership, User, UserStatus
from apps.directory.services import LastSuperAdminError
from idp_portal.settings import base as base_settings
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db

STRONG_PASSWORD = "Tr0ub4dor-and-horses-42"
OTHER_STRONG_PASSWORD = "correct-Battery-staple-97"


@pytest.fixture
def actor():
    return UserFactory(username="the.actor", is_staff=True)


def _only_event(**filters) -> AuditEvent:
    events = list(AuditEvent.objects.filter(**filters))
    assert len(events) == 1, [(event.action, event.target_label) for event in events]
    return events[0]


def _assert_no_password(event: AuditEvent, *hashes: str) -> None:
    dumped = json.dumps([event.before, event.after])
    assert "password" not in dumped
    for value in hashes:
        if value:
            assert value not in dumped


def _assert_target(event: AuditEvent, obj) -> None:
    assert event.target_type == ("directory.user" if isinstance(obj, User) else "directory.group")
    assert event.target_id == str(obj.pk)
    assert event.target_label == str(obj)


def _error_fields(excinfo) -> set[str]:
    return set(excinfo.value.message_dict)


class _Counts:
    """Row counts of everything a directory service may write."""

    def __init__(self) -> None:
        self.value = self._take()

    @staticmethod
    def _take() -> tuple[int, int, int, int]:
        return (
            User.objects.count(),
            Group.objects.count(),
            Membership.objects.count(),
            AuditEvent.objects.count(),
        )

    def assert_unchanged(self) -> None:
        assert self._take() == self.value


# --- user_create --------------------------------------------------------------------------------


def test_user_create_writes_user_and_one_audit_event(actor):
    AuditEvent.objects.all().delete()

    user = services.user_create(
        actor=actor,
        username="  ada  ",
        email="ada@Example.COM",
        first_name="Ada",
        last_name="Lovelace",
        employee_id="E1",
        password=STRONG_PASSWORD,
    )

    user.refresh_from_db()
    assert isinstance(user.id, uuid.UUID)
    assert user.username == "ada"
    assert user.email == "ada@example.com"
    assert user.display_name == "Ada Lovelace"
    assert user.status == UserStatus.ACTIVE
    assert user.check_password(STRONG_PASSWORD)
    event = _only_event()
    assert event.action == "user.create"
    assert event.actor == actor
    assert event.actor_label == "the.actor"
    _assert_target(event, user)
    assert event.before is None
    assert event.after["username"] == "ada"
    assert event.after["id"] == str(user.pk)
    _assert_no_password(event, user.password)


def test_user_create_without_password_has_unusable_password(actor):
    user = services.user_create(actor=actor, username="nopass")
    user.refresh_from_db()
    assert not user.has_usable_password()


def test_user_create_with_system_actor_labels_event_system():
    user = services.user_create(actor=None, username="bysystem")
    event = _only_event(action="user.create", target_id=str(user.pk))
    assert event.actor is None
    assert event.actor_label == "system"


def test_username_is_unique_case_insensitively(actor):
    services.user_create(actor=actor, username="Alice")
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.user_create(actor=actor, username="alice")

    assert "username" in _error_fields(excinfo)
    counts.assert_unchanged()


def test_email_is_unique_case_insensitively(actor):
    services.user_create(actor=actor, username="bob", email="Bob@Example.com")
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.user_create(actor=actor, username="bobby", email="bob@example.COM")

    assert _error_fields(excinfo) == {"email"}
    counts.assert_unchanged()


def test_blank_email_is_not_unique(actor):
    services.user_create(actor=actor, username="noemail1", email="")
    services.user_create(actor=actor, username="noemail2", email="")
    assert User.objects.filter(email="").count() >= 2


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b@c"}, "email"),
        ({"first_name": "x" * 151}, "first_name"),
        ({"last_name": "y" * 151}, "last_name"),
        ({"display_name": "d" * 256}, "display_name"),
        ({"employee_id": "e" * 65}, "employee_id"),
        ({"username": "has space"}, "username"),
        ({"username": "semi;colon"}, "username"),
        ({"username": "u" * 151}, "username"),
        ({"username": "   "}, "username"),
        ({"status": "retired"}, "status"),
    ],
)
def test_user_create_rejects_invalid_values_without_writing(actor, values, field):
    counts = _Counts()
    kwargs = {"username": "valid.name", **values}

    with pytest.raises(ValidationError) as excinfo:
        services.user_create(actor=actor, **kwargs)

    assert field in _error_fields(excinfo)
    counts.assert_unchanged()


def test_user_create_accepts_boundary_lengths(actor):
    user = services.user_create(
        actor=actor,
        username="u" * 150,
        first_name="f" * 150,
        last_name="Smith",
        display_name="d" * 255,
        employee_id="e" * 64,
    )
    user.refresh_from_db()
    assert len(user.username) == 150
    assert len(user.first_name) == 150
    assert len(user.display_name) == 255


def test_user_create_with_longest_valid_names_gets_a_valid_default_display_name(actor):
    user = services.user_create(actor=actor, username="longnames", first_name="f" * 150, last_name="l" * 150)
    assert len(user.display_name) <= 255
    assert user.display_name.startswith("f" * 150)


def test_user_create_rejects_weak_password_without_writing(actor):
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.user_create(actor=actor, username="weak", password="short")

    assert _error_fields(excinfo) == {"password"}
    counts.assert_unchanged()


def test_user_create_rolls_back_when_audit_fails(actor, monkeypatch):
    def broken_audit(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(services, "audit_record", broken_audit)
    counts = _Counts()

    with pytest.raises(RuntimeError):
        services.user_create(actor=actor, username="halfway")

    counts.assert_unchanged()
    assert not User.objects.filter(username="halfway").exists()


@pytest.mark.parametrize(
    ("first", "second", "field"),
    [
        ({"username": "racer"}, {"username": "RACER"}, "username"),
        (
            {"username": "racer1", "email": "race@example.com"},
            {"username": "racer2", "email": "RACE@example.com"},
            "email",
        ),
    ],
)
def test_lost_uniqueness_race_is_reported_on_the_field(actor, monkeypatch, first, second, field):
    services.user_create(actor=actor, **first)
    # Pretend the pre-check ran before the other transaction committed: the constraint decides.
    monkeypatch.setattr(services, "validate_user", lambda user, *args, **kwargs: None)
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.user_create(actor=actor, **second)

    assert _error_fields(excinfo) == {field}
    counts.assert_unchanged()


# --- Argon2 ---------------------------------------------------------------------------------------


def test_argon2_is_the_production_password_hasher(settings, actor):
    assert base_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    settings.PASSWORD_HASHERS = base_settings.PASSWORD_HASHERS

    user = services.user_create(actor=actor, username="argon", password=STRONG_PASSWORD)
    user.refresh_from_db()
    assert user.password.startswith("argon2")
    assert user.check_password(STRONG_PASSWORD)

    services.user_set_password(actor=actor, user=user, password=OTHER_STRONG_PASSWORD)
    user.refresh_from_db()
    assert user.password.startswith("argon2")
    assert user.check_password(OTHER_STRONG_PASSWORD)


# --- user_update ----------------------------------------------------------------------------------


def test_user_update_changes_fields_keeps_id_and_audits_the_difference(actor):
    user = UserFactory(username="carol", first_name="Carol", last_name="Danvers", email="carol@example.com")
    original_id = user.id
    AuditEvent.objects.all().delete()

    updated = services.user_update(actor=actor, user=user, email="captain@example.com", employee_id=" E77 ")

    updated.refresh_from_db()
    assert updated.id == original_id
    assert isinstance(updated.id, uuid.UUID)
    assert updated.email == "captain@example.com"
    assert updated.employee_id == "E77"
    event = _only_event()
    assert event.action == "user.update"
    assert event.actor == actor
    _assert_target(event, updated)
    assert event.before == {"email": "carol@example.com", "employee_id": user.employee_id}
    assert event.after == {"email": "captain@example.com", "employee_id": "E77"}
    _assert_no_password(event, updated.password)


def test_user_update_with_no_change_writes_no_event(actor):
    user = UserFactory(username="same", first_name="Same", last_name="Old")
    AuditEvent.objects.all().delete()

    services.user_update(actor=actor, user=user, first_name="Same", username="same")

    assert AuditEvent.objects.count() == 0


def test_user_update_can_change_username_case_of_itself(actor):
    user = UserFactory(username="dave")
    services.user_update(actor=actor, user=user, username="Dave")
    user.refresh_from_db()
    assert user.username == "Dave"


def test_user_update_refuses_taken_username_and_email_without_writing(actor):
    UserFactory(username="erin", email="erin@example.com")
    user = UserFactory(username="frank", email="frank@example.com")
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.user_update(actor=actor, user=user, username="ERIN", email="Erin@example.com")

    assert _error_fields(excinfo) == {"username", "email"}
    counts.assert_unchanged()
    user.refresh_from_db()
    assert (user.username, user.email) == ("frank", "frank@example.com")


def test_user_update_invalid_values_change_nothing(actor):
    user = UserFactory(username="gina", first_name="Gina")
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.user_update(actor=actor, user=user, first_name="x" * 151, email="nope", username="bad name")

    assert _error_fields(excinfo) == {"first_name", "email", "username"}
    counts.assert_unchanged()
    user.refresh_from_db()
    assert user.first_name == "Gina"


@pytest.mark.parametrize("field", ["status", "password", "id", "created"])
def test_user_update_refuses_fields_it_does_not_own(actor, field):
    user = UserFactory()
    counts = _Counts()

    with pytest.raises(ApplicationError) as excinfo:
        services.user_update(actor=actor, user=user, **{field: "x"})

    assert excinfo.value.code == "not_editable"
    counts.assert_unchanged()


def test_display_name_follows_names_until_set_explicitly(actor):
    user = services.user_create(actor=actor, username="ada", first_name="Ada", last_name="Lovelace")
    assert user.display_name == "Ada Lovelace"

    user = services.user_update(actor=actor, user=user, first_name="Augusta")
    assert user.display_name == "Augusta Lovelace"
    event = AuditEvent.objects.filter(action="user.update").first()
    assert event.before == {"first_name": "Ada", "display_name": "Ada Lovelace"}
    assert event.after == {"first_name": "Augusta", "display_name": "Augusta Lovelace"}

    user = services.user_update(actor=actor, user=user, display_name="The Countess")
    user = services.user_update(actor=actor, user=user, last_name="King")
    user.refresh_from_db()
    assert user.display_name == "The Countess"

    # Clearing it goes back to following the names.
    user = services.user_update(actor=actor, user=user, display_name="")
    assert user.display_name == "Augusta King"
    user = services.user_update(actor=actor, user=user, first_name="Ada")
    user.refresh_from_db()
    assert user.display_name == "Ada King"


def test_explicit_display_name_on_create_is_kept(actor):
    user = services.user_create(
        actor=actor, username="grace", first_name="Grace", last_name="Hopper", display_name="Amazing Grace"
    )
    user = services.user_update(actor=actor, user=user, last_name="Murray")
    user.refresh_from_db()
    assert user.display_name == "Amazing Grace"


def test_display_name_defaults_with_only_one_name(actor):
    assert services.user_create(actor=actor, username="cher", first_name="Cher").display_name == "Cher"
    assert services.user_create(actor=actor, username="anon").display_name == ""


# --- status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "start", "end", "action"),
    [
        (services.user_suspend, UserStatus.ACTIVE, UserStatus.SUSPENDED, "user.suspend"),
        (services.user_reactivate, UserStatus.SUSPENDED, UserStatus.ACTIVE, "user.reactivate"),
        (services.user_stage, UserStatus.ACTIVE, UserStatus.STAGED, "user.stage"),
        (services.user_reactivate, UserStatus.STAGED, UserStatus.ACTIVE, "user.reactivate"),
    ],
)
def test_status_services_change_status_with_one_event(actor, service, start, end, action):
    user = UserFactory(status=start)
    original_id = user.id
    AuditEvent.objects.all().delete()

    result = service(actor=actor, user=user)

    result.refresh_from_db()
    assert result.status == end
    assert result.id == original_id
    event = _only_event()
    assert event.action == action
    assert event.actor == actor
    _assert_target(event, result)
    assert event.before == {"status": start}
    assert event.after == {"status": end}
    _assert_no_password(event, result.password)


def test_status_service_to_the_same_status_writes_nothing(actor):
    user = UserFactory(status=UserStatus.SUSPENDED)
    AuditEvent.objects.all().delete()

    services.user_suspend(actor=actor, user=user)

    assert AuditEvent.objects.count() == 0


def test_suspended_user_is_not_active(actor):
    user = services.user_suspend(actor=actor, user=UserFactory())
    assert not user.is_active
    assert services.user_reactivate(actor=actor, user=user).is_active


def test_user_set_status_rejects_unknown_status(actor):
    user = UserFactory()
    with pytest.raises(ValidationError) as excinfo:
        services.user_set_status(actor=actor, user=user, status="retired")
    assert _error_fields(excinfo) == {"status"}


# --- user_set_password ----------------------------------------------------------------------------


def test_user_set_password_sets_it_with_one_event_without_the_hash(actor):
    user = UserFactory()
    AuditEvent.objects.all().delete()

    services.user_set_password(actor=actor, user=user, password=STRONG_PASSWORD)

    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    event = _only_event()
    assert event.action == "user.set_password"
    assert event.actor == actor
    _assert_target(event, user)
    _assert_no_password(event, user.password)
    assert STRONG_PASSWORD not in json.dumps([event.before, event.after, event.target_label])


@pytest.mark.parametrize("password", ["short", "123456789012345"])
def test_user_set_password_rejects_weak_password_without_writing(actor, password):
    user = UserFactory()
    services.user_set_password(actor=actor, user=user, password=STRONG_PASSWORD)
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.user_set_password(actor=actor, user=user, password=password)

    assert _error_fields(excinfo) == {"password"}
    counts.assert_unchanged()
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_user_set_password_rejects_password_like_the_username(actor):
    user = UserFactory(username="maximilian.schmidt")
    with pytest.raises(ValidationError) as excinfo:
        services.user_set_password(actor=actor, user=user, password="maximilian.schmidt")
    assert "password" in _error_fields(excinfo)


# --- user_delete ----------------------------------------------------------------------------------


def test_user_delete_removes_user_and_memberships_but_not_groups(actor):
    user = UserFactory()
    other = UserFactory()
    group = GroupFactory(members=[user, other])
    user_id = user.pk
    AuditEvent.objects.all().delete()

    services.user_delete(actor=actor, user=user)

    assert not User.objects.filter(pk=user_id).exists()
    assert Group.objects.filter(pk=group.pk).exists()
    assert list(Membership.objects.filter(group=group).values_list("user_id", flat=True)) == [other.pk]
    assert not Membership.objects.filter(user_id=user_id).exists()
    event = _only_event()
    assert event.action == "user.delete"
    assert event.actor == actor
    assert event.target_type == "directory.user"
    assert event.target_id == str(user_id)
    assert event.before["username"] == user.username
    assert event.before["groups"] == [str(group.pk)]
    assert event.after is None
    _assert_no_password(event, user.password)


def test_audit_trail_survives_deletion_of_the_actor(actor):
    target = UserFactory()
    services.user_suspend(actor=actor, user=target)
    services.user_delete(actor=None, user=actor)

    event = AuditEvent.objects.get(action="user.suspend")
    assert event.actor is None
    assert event.actor_label == "the.actor"


# --- last active super-admin ----------------------------------------------------------------------


@pytest.fixture
def only_superadmin():
    return UserFactory(username="only.root", is_staff=True, is_superuser=True)


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda user: services.user_suspend(actor=None, user=user), id="suspend"),
        pytest.param(lambda user: services.user_stage(actor=None, user=user), id="stage"),
        pytest.param(lambda user: services.user_set_status(actor=None, user=user, status="suspended"), id="set_status"),
        pytest.param(lambda user: services.user_delete(actor=None, user=user), id="delete"),
        pytest.param(lambda user: services.user_update(actor=None, user=user, is_superuser=False), id="demote"),
    ],
)
def test_last_active_superadmin_cannot_be_removed(only_superadmin, operation):
    # Other super-admins who are not active do not count.
    UserFactory(is_superuser=True, is_staff=True, status=UserStatus.SUSPENDED)
    UserFactory(is_superuser=True, is_staff=True, status=UserStatus.STAGED)
    counts = _Counts()

    with pytest.raises(LastSuperAdminError) as excinfo:
        operation(only_superadmin)

    assert excinfo.value.code == "last_superadmin"
    assert isinstance(excinfo.value, ApplicationError)
    counts.assert_unchanged()
    only_superadmin.refresh_from_db()
    assert only_superadmin.is_superuser
    assert only_superadmin.status == UserStatus.ACTIVE


def test_demote_with_other_changes_writes_nothing(only_superadmin):
    with pytest.raises(LastSuperAdminError):
        services.user_update(actor=None, user=only_superadmin, is_superuser=False, first_name="Changed")
    only_superadmin.refresh_from_db()
    assert only_superadmin.first_name != "Changed"


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        (lambda user: services.user_suspend(actor=None, user=user), "user.suspend"),
        (lambda user: services.user_delete(actor=None, user=user), "user.delete"),
        (lambda user: services.user_update(actor=None, user=user, is_superuser=False), "user.update"),
    ],
)
def test_superadmin_can_be_removed_when_another_is_active(only_superadmin, operation, action):
    UserFactory(is_superuser=True, is_staff=True)
    AuditEvent.objects.all().delete()

    operation(only_superadmin)

    event = _only_event()
    assert event.action == action
    assert event.target_id == str(only_superadmin.pk)


def test_two_superadmins_cannot_both_be_suspended(only_superadmin):
    second = UserFactory(is_superuser=True, is_staff=True)
    services.user_suspend(actor=None, user=second)
    with pytest.raises(LastSuperAdminError):
        services.user_suspend(actor=None, user=only_superadmin)


def test_suspended_superadmin_can_be_deleted_and_demoted(only_superadmin):
    suspended = UserFactory(is_superuser=True, is_staff=True, status=UserStatus.SUSPENDED)
    services.user_update(actor=None, user=suspended, is_superuser=False)
    services.user_delete(actor=None, user=suspended)
    assert not User.objects.filter(pk=suspended.pk).exists()


def test_ordinary_users_are_not_guarded():
    user = UserFactory()
    services.user_suspend(actor=None, user=user)
    services.user_delete(actor=None, user=user)
    assert not User.objects.filter(pk=user.pk).exists()


# --- groups ---------------------------------------------------------------------------------------


def test_group_create_writes_group_and_one_audit_event(actor):
    AuditEvent.objects.all().delete()

    group = services.group_create(actor=actor, name="  Engineering ", description=" Builds things ")

    group.refresh_from_db()
    assert isinstance(group.id, uuid.UUID)
    assert group.name == "Engineering"
    assert group.description == "Builds things"
    event = _only_event()
    assert event.action == "group.create"
    assert event.actor == actor
    _assert_target(event, group)
    assert event.after == {
        "id": str(group.pk),
        "name": "Engineering",
        "description": "Builds things",
        "external_id": "",
    }


def test_group_create_with_members_audits_create_and_add(actor):
    users = [UserFactory(), UserFactory()]
    AuditEvent.objects.all().delete()

    group = services.group_create(actor=actor, name="Ops", members=users)

    assert set(group.members.all()) == set(users)
    assert _only_event(action="group.create").target_id == str(group.pk)
    added = _only_event(action="group.members.add")
    assert sorted(item["id"] for item in added.after["added"]) == sorted(str(user.pk) for user in users)
    assert AuditEvent.objects.count() == 2


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "ENGINEERING"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "g" * 151}, "name"),
        pytest.param(
            {"name": "Fine", "description": "d" * 2001},
            "description",
            id="description-too-long",
        ),
    ],
)
def test_group_create_rejects_invalid_values_without_writing(actor, values, field):
    services.group_create(actor=actor, name="Engineering")
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.group_create(actor=actor, **values)

    assert _error_fields(excinfo) == {field}
    counts.assert_unchanged()


def test_group_rename_is_audited_as_rename(actor):
    group = GroupFactory(name="Sales", description="Sells")
    original_id = group.id
    AuditEvent.objects.all().delete()

    group = services.group_update(actor=actor, group=group, name="Revenue")

    group.refresh_from_db()
    assert group.name == "Revenue"
    assert group.id == original_id
    event = _only_event()
    assert event.action == "group.rename"
    assert event.actor == actor
    _assert_target(event, group)
    assert event.before == {"name": "Sales"}
    assert event.after == {"name": "Revenue"}


def test_group_description_change_is_audited_as_update(actor):
    group = GroupFactory(name="Legal")
    AuditEvent.objects.all().delete()

    services.group_update(actor=actor, group=group, description="Reads contracts")

    event = _only_event()
    assert event.action == "group.update"
    assert event.before == {"description": ""}
    assert event.after == {"description": "Reads contracts"}


def test_group_update_no_change_writes_nothing(actor):
    group = GroupFactory(name="Static")
    AuditEvent.objects.all().delete()
    services.group_update(actor=actor, group=group, name="Static")
    assert AuditEvent.objects.count() == 0


def test_group_rename_to_taken_name_changes_nothing(actor):
    GroupFactory(name="Finance")
    group = GroupFactory(name="Accounting")
    counts = _Counts()

    with pytest.raises(ValidationError) as excinfo:
        services.group_update(actor=actor, group=group, name="finance")

    assert _error_fields(excinfo) == {"name"}
    counts.assert_unchanged()
    group.refresh_from_db()
    assert group.name == "Accounting"


def test_group_rename_case_only_of_itself(actor):
    group = GroupFactory(name="devops")
    services.group_update(actor=actor, group=group, name="DevOps")
    group.refresh_from_db()
    assert group.name == "DevOps"


def test_group_update_refuses_unknown_fields(actor):
    group = GroupFactory()
    with pytest.raises(ApplicationError) as excinfo:
        services.group_update(actor=actor, group=group, members=[])
    assert excinfo.value.code == "not_editable"


def test_group_delete_keeps_users_and_audits_members(actor):
    users = [UserFactory(), UserFactory()]
    group = GroupFactory(members=users)
    group_id = group.pk
    AuditEvent.objects.all().delete()

    services.group_delete(actor=actor, group=group)

    assert not Group.objects.filter(pk=group_id).exists()
    assert not Membership.objects.filter(group_id=group_id).exists()
    assert User.objects.filter(pk__in=[user.pk for user in users]).count() == 2
    event = _only_event()
    assert event.action == "group.delete"
    assert event.actor == actor
    assert event.target_type == "directory.group"
    assert event.target_id == str(group_id)
    assert sorted(event.before["members"]) == sorted(str(user.pk) for user in users)
    assert event.before["name"] == group.name


# --- membership -----------------------------------------------------------------------------------


def test_group_add_members_is_idempotent(actor):
    group = GroupFactory()
    user = UserFactory()
    AuditEvent.objects.all().delete()

    first = services.group_add_members(actor=actor, group=group, users=[user, user])
    second = services.group_add_members(actor=actor, group=group, users=[user])

    assert first == [user]
    assert second == []
    assert Membership.objects.filter(group=group, user=user).count() == 1
    event = _only_event()
    assert event.action == "group.members.add"
    assert event.actor == actor
    _assert_target(event, group)
    assert event.after == {"added": [{"id": str(user.pk), "username": user.username}]}
    _assert_no_password(event, user.password)


def test_group_add_members_adds_only_new_ones(actor):
    present, new = UserFactory(), UserFactory()
    group = GroupFactory(members=[present])
    AuditEvent.objects.all().delete()

    added = services.group_add_members(actor=actor, group=group, users=[present, new])

    assert added == [new]
    assert set(group.members.all()) == {present, new}
    assert _only_event().after == {"added": [{"id": str(new.pk), "username": new.username}]}


def test_group_add_no_members_writes_nothing(actor):
    group = GroupFactory()
    AuditEvent.objects.all().delete()
    assert services.group_add_members(actor=actor, group=group, users=[]) == []
    assert AuditEvent.objects.count() == 0


def test_group_remove_members(actor):
    staying, leaving, outsider = UserFactory(), UserFactory(), UserFactory()
    group = GroupFactory(members=[staying, leaving])
    AuditEvent.objects.all().delete()

    removed = services.group_remove_members(actor=actor, group=group, users=[leaving, outsider])

    assert removed == [leaving]
    assert list(group.members.all()) == [staying]
    assert User.objects.filter(pk=leaving.pk).exists()
    event = _only_event()
    assert event.action == "group.members.remove"
    assert event.actor == actor
    _assert_target(event, group)
    assert event.before == {"removed": [{"id": str(leaving.pk), "username": leaving.username}]}

    assert services.group_remove_members(actor=actor, group=group, users=[leaving]) == []
    assert AuditEvent.objects.count() == 1


def test_group_set_members_applies_the_difference(actor):
    keep, drop, add = UserFactory(), UserFactory(), UserFactory()
    group = GroupFactory(members=[keep, drop])
    AuditEvent.objects.all().delete()

    services.group_set_members(actor=actor, group=group, users=[keep, add])

    assert set(group.members.all()) == {keep, add}
    assert _only_event(action="group.members.remove").before == {
        "removed": [{"id": str(drop.pk), "username": drop.username}]
    }
    assert _only_event(action="group.members.add").after == {"added": [{"id": str(add.pk), "username": add.username}]}
    assert AuditEvent.objects.count() == 2


def test_group_set_members_to_same_list_writes_nothing(actor):
    users = [UserFactory(), UserFactory()]
    group = GroupFactory(members=users)
    AuditEvent.objects.all().delete()

    services.group_set_members(actor=actor, group=group, users=list(reversed(users)))

    assert set(group.members.all()) == set(users)
    assert AuditEvent.objects.count() == 0


def test_group_set_members_to_empty(actor):
    users = [UserFactory(), UserFactory()]
    group = GroupFactory(members=users)
    AuditEvent.objects.all().delete()

    services.group_set_members(actor=actor, group=group, users=[])

    assert not group.members.exists()
    event = _only_event()
    assert event.action == "group.members.remove"
    assert len(event.before["removed"]) == 2
