"""Every change to the directory goes through here: validated, in one transaction, audited."""

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.db import batched_statements, insert_row
from apps.common.errors import ApplicationError, ConflictError, field_error
from apps.directory import changes as announce
from apps.directory.attributes import PROFILE_FIELDS, changed_attribute_keys
from apps.directory.models import (
    AdminRole,
    Group,
    Membership,
    User,
    UserStatus,
)
from apps.directory.profile import apply_profile, detach_reports, profile_snapshot
from apps.directory.roles import require_reach, require_reach_query
from apps.directory.rules.engine import rederive_rules_reading, reevaluate_user
from apps.directory.rules.services import require_manual_membership
from apps.directory.validation import (
    USER_UNIQUE_FIELDS,
    check_password_policy,
    clean_text,
    default_display_name,
    refused_user_error,
    save_unique,
    save_user,
    validate_user,
)

USER_EDITABLE_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "employee_id",
    "external_id",
    "is_staff",
    "is_superuser",
    *PROFILE_FIELDS,
)
_USER_TEXT_FIELDS = ("username", "email", "first_name", "last_name", "display_name", "employee_id", "external_id")
GROUP_EDITABLE_FIELDS = ("name", "description", "external_id")
GROUP_DESCRIPTION_MAX_LENGTH = 2000


class LastSuperAdminError(ApplicationError):
    """Refusing to leave the directory without an active super-admin (break-glass rule)."""

    def __init__(self) -> None:
        super().__init__(
            "This is the last active super-admin; make another user a super-admin first.",
            code="last_superadmin",
        )


# --- Snapshots for the audit trail (never a password) -----------------------------------------


def user_snapshot(user: User) -> dict[str, Any]:
    return {
        "id": str(user.pk),
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "display_name": user.display_name,
        "employee_id": user.employee_id,
        "external_id": user.external_id,
        "status": user.status,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "admin_role": user.console_role,
        **profile_snapshot(user),
    }


def group_snapshot(group: Group) -> dict[str, Any]:
    return {"id": str(group.pk), "name": group.name, "description": group.description, "external_id": group.external_id}


def _active_superadmins_other_than(user: User) -> bool:
    return User.objects.filter(is_superuser=True, status=UserStatus.ACTIVE).exclude(pk=user.pk).exists()


def _guard_last_superadmin(user: User) -> None:
    """Call before `user` stops being an active super-admin (suspended, deleted, demoted)."""
    if user.is_superuser and user.is_active and not _active_superadmins_other_than(user):
        raise LastSuperAdminError()


def _audit_and_notify(
    *,
    actor: Actor,
    action: str,
    target: User | Group,
    notify: Callable[[], None],
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """The audit row of a change and the outbox rows of the connectors that must hear of it, in one
    round trip with the question of which connectors provision (apps.common.db.batched_statements)."""
    with batched_statements():
        audit_record(actor=actor, action=action, target=target, before=before, after=after)
        notify()


# --- Users ------------------------------------------------------------------------------------


def user_create(
    *,
    actor: Actor,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    display_name: str = "",
    employee_id: str = "",
    external_id: str = "",
    status: str = UserStatus.ACTIVE,
    password: str | None = None,
    password_temporary: bool = False,
    is_staff: bool = False,
    is_superuser: bool = False,
    validate_password: bool = True,
    **profile: Any,
) -> User:
    """Validate, then insert, audit and record for the connectors in one transaction.

    `password_temporary`: the person must choose their own password at their first sign-in.
    `profile`: any of the profile fields (apps.directory.attributes.PROFILE_FIELDS), cleaned and
    checked by apps.directory.profile.apply_profile."""
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise ApplicationError(f"Cannot set {', '.join(sorted(unknown))} here.", code="not_editable")
    values = clean_text(
        {
            "username": username,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "display_name": display_name,
            "employee_id": employee_id,
            "external_id": external_id,
        },
        _USER_TEXT_FIELDS,
    )
    if not values["display_name"]:
        values["display_name"] = default_display_name(values["first_name"], values["last_name"])
    user = User(
        **values,
        status=status,
        is_staff=is_staff,
        is_superuser=is_superuser,
        must_change_password=bool(password and password_temporary),
    )
    require_reach(actor, [user])  # creating a staff account takes the rank of the role it gives
    validate_user(user, errors=apply_profile(user, profile, creating=True))
    if password:
        if validate_password:
            check_password_policy(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        # The INSERT travels with its audit row (nothing is read back: the id is made here), and a
        # clash surfaces inside this block all the same.
        with transaction.atomic():
            with batched_statements():
                insert_row(user)
                if password:
                    password_validation.password_changed(password, user)  # as User.save() would
                audit_record(actor=actor, action="user.create", target=user, after=user_snapshot(user))
                announce.user_changed([user.pk], "user.create")
            reevaluate_user(actor=actor, user=user, attributes=None, trigger="user.create")
    except IntegrityError as exc:
        # Rolled back: the clashes can be looked up now, with no savepoint around the insert.
        error = refused_user_error(user, exc, USER_UNIQUE_FIELDS)
        if error is not None:
            raise error from exc
        raise
    return user


def user_update(*, actor: Actor, user: User, locked: bool = False, **changes: Any) -> User:
    """Change profile fields and roles. Status changes go through user_suspend/user_reactivate.

    `locked`: the caller read `user` with select_for_update() in the transaction it is in, and rolls
    that transaction back if this raises. `user` is then not read again (it is changed in place)
    and no savepoint is taken.
    """
    unknown = set(changes) - set(USER_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Cannot update {', '.join(sorted(unknown))} here.", code="not_editable")
    with transaction.atomic(savepoint=not locked):
        if not locked:
            user = User.objects.select_for_update().get(pk=user.pk)
        return _update_locked_user(actor=actor, user=user, changes=changes)


def _update_locked_user(*, actor: Actor, user: User, changes: dict[str, Any]) -> User:
    require_reach(actor, [user])
    before = user_snapshot(user)
    profile_errors = apply_profile(user, changes, creating=False)
    values = clean_text({name: changes[name] for name in changes if name not in PROFILE_FIELDS}, _USER_TEXT_FIELDS)

    # The display name follows first/last name until someone sets it to something else.
    derived_before = default_display_name(user.first_name, user.last_name)
    follows_name = user.display_name in ("", derived_before)
    for name, value in values.items():
        setattr(user, name, value)
    if "display_name" not in values and follows_name:
        user.display_name = default_display_name(user.first_name, user.last_name)
    if not user.display_name:
        user.display_name = default_display_name(user.first_name, user.last_name)

    if user.console_role != before["admin_role"]:
        require_reach(actor, [user])  # the role it is given
    if before["is_superuser"] and not user.is_superuser:
        _guard_last_superadmin(User(pk=user.pk, is_superuser=True, status=before["status"]))
    # Only a username or email that changed can clash (the constraints decide; see save_user).
    unique = [field for field in USER_UNIQUE_FIELDS if getattr(user, field) != before[field]]
    validate_user(user, unique, errors=profile_errors)
    after = user_snapshot(user)
    if after == before:
        return user
    changed = {key for key in after if after[key] != before[key]}
    attributes = changed_attribute_keys(before, after)
    update_fields = [name for name in USER_EDITABLE_FIELDS if name in changed] + ["updated"]
    audit = {"before": {key: before[key] for key in changed}, "after": {key: after[key] for key in changed}}
    if unique:
        save_user(user, unique=unique, update_fields=update_fields)
        _audit_and_notify(
            actor=actor,
            action="user.update",
            target=user,
            notify=lambda: announce.user_changed([user.pk], "user.update", attributes=attributes),
            **audit,
        )
        reevaluate_user(actor=actor, user=user, attributes=attributes, trigger="user.update")
        return user
    # No constraint can refuse this UPDATE and the row is locked, so its row count need not be read
    # (save() would read it): it travels with the audit row and the provisioning check.
    user.updated = timezone.now()
    with batched_statements():
        User.objects.filter(pk=user.pk).update(**{name: getattr(user, name) for name in update_fields})
        audit_record(actor=actor, action="user.update", target=user, **audit)
        announce.user_changed([user.pk], "user.update", attributes=attributes)
    # Rule-based groups whose rules read a changed attribute take the user in or out, in this transaction.
    reevaluate_user(actor=actor, user=user, attributes=attributes, trigger="user.update")
    return user


@transaction.atomic
def user_set_admin_role(*, actor: Actor, user: User, role: str) -> User:
    """Make `user` staff with `role` (an AdminRole value), or take staff rights away with ""."""
    if role and role not in AdminRole.values:
        raise field_error("admin_role", f"Unknown role {role!r}.")
    require_reach(actor, [user])
    before = user_snapshot(user)
    if user.is_superuser and role != AdminRole.SUPER_ADMIN:
        _guard_last_superadmin(user)
    user.is_staff = bool(role)
    user.is_superuser = role == AdminRole.SUPER_ADMIN
    user.admin_role = role
    require_reach(actor, [user])  # the role it is given
    user.save(update_fields=["is_staff", "is_superuser", "admin_role", "updated"])
    after = user_snapshot(user)
    if after != before:
        audit_record(
            actor=actor,
            action="user.role_change",
            target=user,
            before={"admin_role": before["admin_role"]},
            after={"admin_role": after["admin_role"]},
        )
    return user


@transaction.atomic
def user_set_password(*, actor: Actor, user: User, password: str, temporary: bool | None = None) -> User:
    """Set `user`'s password. One set by someone else is `temporary` unless they say otherwise: the
    person must choose their own at their next sign-in. One a person sets for themselves never is."""
    own = getattr(actor, "pk", None) == user.pk
    if not own:  # everyone may change their own
        require_reach(actor, [user])
    check_password_policy(password, user)
    user.set_password(password)
    user.must_change_password = False if own else (True if temporary is None else temporary)
    user.save(update_fields=["password", "must_change_password", "updated"])
    audit_record(
        actor=actor,
        action="user.set_password",
        target=user,
        after={"temporary": user.must_change_password},
    )
    return user


def _user_set_status(*, actor: Actor, user: User, status: str, action: str, locked: bool = False) -> User:
    with transaction.atomic(savepoint=not locked):
        if not locked:
            user = User.objects.select_for_update().get(pk=user.pk)
        return _set_locked_user_status(actor=actor, user=user, status=status, action=action)


def _set_locked_user_status(*, actor: Actor, user: User, status: str, action: str) -> User:
    require_reach(actor, [user])
    if user.status == status:
        return user
    if status != UserStatus.ACTIVE:
        _guard_last_superadmin(user)
    before_status = user.status
    user.status = status
    user.save(update_fields=["status", "updated"])
    _audit_and_notify(
        actor=actor,
        action=action,
        target=user,
        before={"status": before_status},
        after={"status": status},
        notify=lambda: announce.user_changed([user.pk], action),
    )
    reevaluate_user(actor=actor, user=user, attributes={"status"}, trigger=action)
    return user


def user_suspend(*, actor: Actor, user: User, locked: bool = False) -> User:
    """`locked`: as for user_update."""
    return _user_set_status(actor=actor, user=user, status=UserStatus.SUSPENDED, action="user.suspend", locked=locked)


def user_reactivate(*, actor: Actor, user: User, locked: bool = False) -> User:
    """`locked`: as for user_update."""
    return _user_set_status(actor=actor, user=user, status=UserStatus.ACTIVE, action="user.reactivate", locked=locked)


def user_stage(*, actor: Actor, user: User) -> User:
    return _user_set_status(actor=actor, user=user, status=UserStatus.STAGED, action="user.stage")


def user_set_status(*, actor: Actor, user: User, status: str) -> User:
    """Move a user to `status` through the service that owns that transition."""
    transitions = {
        UserStatus.ACTIVE: user_reactivate,
        UserStatus.SUSPENDED: user_suspend,
        UserStatus.STAGED: user_stage,
    }
    if status not in transitions:
        raise field_error("status", f"{status!r} is not a valid status.", code="invalid_choice")
    return transitions[UserStatus(status)](actor=actor, user=user)


@transaction.atomic
def user_delete(*, actor: Actor, user: User) -> None:
    user = User.objects.select_for_update().get(pk=user.pk)
    require_reach(actor, [user])
    _guard_last_superadmin(user)
    before = user_snapshot(user)
    before["groups"] = [str(group_id) for group_id in user.memberships.values_list("group_id", flat=True)]
    # Their manager goes with them (the FK's SET_NULL would do it unannounced and unaudited).
    reports = detach_reports(user)
    if reports:
        before["reports"] = reports
    _audit_and_notify(
        actor=actor,
        action="user.delete",
        target=user,
        before=before,
        notify=lambda: announce.user_deleted(user),
    )
    user.delete()
    if reports:  # their manager is gone: rules on `manager` re-derive (set-wise; their reports may be many)
        rederive_rules_reading(actor=actor, attributes={"manager"}, trigger="user.delete")


# --- Groups -----------------------------------------------------------------------------------


def _validate_group(group: Group) -> None:
    errors: dict[str, list] = {}
    try:
        group.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        errors.update(exc.error_dict)
    if len(group.description) > GROUP_DESCRIPTION_MAX_LENGTH:
        errors["description"] = [
            ValidationError(
                f"Ensure this value has at most {GROUP_DESCRIPTION_MAX_LENGTH} characters.", code="max_length"
            )
        ]
    if "name" not in errors and (Group.objects.exclude(pk=group.pk).filter(name__iexact=group.name).exists()):
        errors["name"] = [ValidationError("A group with this name already exists.", code="unique")]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def group_create(
    *, actor: Actor, name: str, description: str = "", external_id: str = "", members: Iterable[User] = ()
) -> Group:
    group = Group(
        name=(name or "").strip(), description=(description or "").strip(), external_id=(external_id or "").strip()
    )
    _validate_group(group)
    save_unique(group, fields={"name": "name"})
    audit_record(actor=actor, action="group.create", target=group, after=group_snapshot(group))
    members = list(members)
    if members:
        group_add_members(actor=actor, group=group, users=members)
    return group


@transaction.atomic
def group_update(*, actor: Actor, group: Group, **changes: Any) -> Group:
    unknown = set(changes) - set(GROUP_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Cannot update {', '.join(sorted(unknown))} here.", code="not_editable")
    group = Group.objects.select_for_update().get(pk=group.pk)
    before = group_snapshot(group)
    for name, value in changes.items():
        setattr(group, name, ("" if value is None else str(value)).strip())
    _validate_group(group)
    after = group_snapshot(group)
    if after == before:
        return group
    save_unique(group, fields={"name": "name"})
    action = "group.rename" if before["name"] != after["name"] else "group.update"
    changed = {key for key in after if after[key] != before[key]}
    _audit_and_notify(
        actor=actor,
        action=action,
        target=group,
        before={key: before[key] for key in changed},
        after={key: after[key] for key in changed},
        notify=lambda: announce.group_changed(group, action),
    )
    return group


@transaction.atomic
def group_delete(*, actor: Actor, group: Group) -> None:
    """Delete a group; refused while a staff member is beyond the actor's reach (it would change
    their groups) or while something depends on it (a SCIM token scoped to it)."""
    require_reach_query(actor, User.objects.filter(memberships__group=group))
    before = group_snapshot(group)
    before["members"] = [str(user_id) for user_id in group.memberships.values_list("user_id", flat=True)]
    _audit_and_notify(
        actor=actor,
        action="group.delete",
        target=group,
        before=before,
        notify=lambda: announce.group_deleted(group),
    )
    try:
        group.delete()  # refused by the collector before any row goes
    except (ProtectedError, RestrictedError) as exc:
        blockers = sorted(str(item) for item in exc.protected_objects if not isinstance(item, Membership))
        raise ConflictError(
            f"{group.name} cannot be deleted while {', '.join(blockers[:10])} depends on it: "
            "revoke or change that first.",
            code="group_in_use",
            extra={"depends": blockers},
        ) from exc


def _touch(group: Group) -> None:
    """A change of members is a change of the group: its lastModified and SCIM version move."""
    group.updated = timezone.now()
    Group.objects.filter(pk=group.pk).update(updated=group.updated)


@transaction.atomic
def group_add_members(*, actor: Actor, group: Group, users: Iterable[User]) -> list[User]:
    """Add users who are not members yet; returns those actually added."""
    wanted = {user.pk: user for user in users}
    if not wanted:
        return []
    require_manual_membership(group)
    present = set(Membership.objects.filter(group=group, user_id__in=wanted).values_list("user_id", flat=True))
    added = [user for pk, user in wanted.items() if pk not in present]
    if not added:
        return []
    require_reach_query(actor, User.objects.filter(pk__in=[user.pk for user in added]))
    Membership.objects.bulk_create([Membership(group=group, user=user) for user in added], ignore_conflicts=True)
    _touch(group)
    _audit_and_notify(
        actor=actor,
        action="group.members.add",
        target=group,
        after={"added": [{"id": str(user.pk), "username": user.username} for user in added]},
        notify=lambda: announce.group_changed(group, "group.members.add", member_ids=[user.pk for user in added]),
    )
    return added


@transaction.atomic
def group_remove_members(*, actor: Actor, group: Group, users: Iterable[User]) -> list[User]:
    """Remove users who are members; returns those actually removed."""
    wanted = {user.pk: user for user in users}
    if not wanted:
        return []
    require_manual_membership(group)
    present = set(Membership.objects.filter(group=group, user_id__in=wanted).values_list("user_id", flat=True))
    removed = [user for pk, user in wanted.items() if pk in present]
    if not removed:
        return []
    require_reach_query(actor, User.objects.filter(pk__in=[user.pk for user in removed]))
    Membership.objects.filter(group=group, user_id__in=[user.pk for user in removed]).delete()
    _touch(group)
    _audit_and_notify(
        actor=actor,
        action="group.members.remove",
        target=group,
        before={"removed": [{"id": str(user.pk), "username": user.username} for user in removed]},
        notify=lambda: announce.group_changed(group, "group.members.remove", member_ids=[user.pk for user in removed]),
    )
    return removed


@transaction.atomic
def group_set_members(*, actor: Actor, group: Group, users: Iterable[User]) -> None:
    """Make the member list exactly `users`, as adds and removes of the difference."""
    wanted = {user.pk: user for user in users}
    require_manual_membership(group)
    current = set(Membership.objects.filter(group=group).values_list("user_id", flat=True))
    group_remove_members(actor=actor, group=group, users=User.objects.filter(pk__in=current - set(wanted)))
    group_add_members(actor=actor, group=group, users=[user for pk, user in wanted.items() if pk not in current])
