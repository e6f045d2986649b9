"""The profile part of a user's writes: cleaning the RFC 7643 and custom attributes onto a user,
checking the manager, snapshots for the audit trail, and who else hears of a change (a manager's
reports). apps.directory.services calls these on every create and update, so every entry point
(console, API, SCIM, CSV import) meets the same rules.
"""

from collections.abc import Collection
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.directory import changes as announce
from apps.directory.attributes import MULTI_VALUED_FIELDS, PROFILE_FIELDS, PROFILE_TEXT_FIELDS
from apps.directory.models import CustomAttribute, User
from apps.directory.profile_validation import (
    ProfileValueError,
    clean_custom_attributes,
    clean_items,
    clean_profile_text,
)

# A manager chain longer than this is refused outright: no real organisation is that deep, and
# the walk up the chain must end.
MANAGER_CHAIN_MAX_DEPTH = 100
# The user's keys that their reports' `manager.*` keys read (see user_value): when one changes,
# the reports are announced too, for apps that receive manager.displayName.
MANAGER_KEYS_SHOWN_ON_REPORTS = ("display_name", "username", "email", "employee_id")

Errors = dict[str, list[ValidationError]]


def profile_snapshot(user: User) -> dict[str, Any]:
    """The profile part of a user's audit snapshot: the manager as an id, lists and dicts as stored."""
    snapshot: dict[str, Any] = {name: getattr(user, name) for name in PROFILE_TEXT_FIELDS}
    for name in MULTI_VALUED_FIELDS:
        snapshot[name] = list(getattr(user, name) or [])
    snapshot["manager"] = str(user.manager_id) if user.manager_id else None
    snapshot["custom_attributes"] = dict(user.custom_attributes or {})
    return snapshot


def resolve_manager(user: User, value: Any) -> User | None:
    """The manager `value` names (a User, an id or None), checked: it exists, is not `user`, and
    would not put `user` above itself in the reporting chain."""
    if value in (None, ""):
        return None
    if isinstance(value, User):
        manager_id = value.pk
        manager: User | None = value
    else:
        try:
            manager_id = value if isinstance(value, UUID) else UUID(str(value).strip())
        except ValueError as exc:
            raise ProfileValueError("Enter the id of a user.") from exc
        manager = User.objects.filter(pk=manager_id).first()
        if manager is None:
            raise ProfileValueError(f"No user has the id {manager_id}.")
    if manager_id == user.pk:
        raise ProfileValueError("A user cannot be their own manager.")
    if user.pk is not None and _reports_to(manager_id, user.pk):
        raise ProfileValueError(
            f"{manager.username} reports to {user.username or 'this user'}, directly or not: "
            "this would make a loop of managers."
        )
    return manager


def _reports_to(start_id: Any, boss_id: Any) -> bool:
    """Whether `boss_id` is in the chain of managers above `start_id`."""
    current = start_id
    seen = {current}
    for _ in range(MANAGER_CHAIN_MAX_DEPTH):
        current = User.objects.filter(pk=current).values_list("manager_id", flat=True).first()
        if current is None:
            return False
        if current == boss_id:
            return True
        if current in seen:  # a loop above, not through this user: not ours to refuse
            return False
        seen.add(current)
    return True


def apply_profile(
    user: User,
    changes: dict[str, Any],
    *,
    creating: bool,
    definitions: list[CustomAttribute] | None = None,
) -> Errors:
    """Clean the profile fields among `changes` onto `user` (in memory); return the field errors.

    `custom_attributes`, when given, is the user's whole set of custom values (names not given are
    removed); callers that merge (an API PATCH) merge before calling.
    """
    errors: Errors = {}
    for name in PROFILE_FIELDS:
        if name not in changes:
            continue
        value = changes[name]
        try:
            if name in PROFILE_TEXT_FIELDS:
                setattr(user, name, clean_profile_text(name, value))
            elif name in MULTI_VALUED_FIELDS:
                setattr(user, name, clean_items(name, value))
            elif name == "manager":
                user.manager = resolve_manager(user, value)
        except ProfileValueError as exc:
            errors[name] = [ValidationError(str(exc), code="invalid")]
    if "custom_attributes" in changes or creating:  # a new user must have the required ones
        found = list(CustomAttribute.objects.all()) if definitions is None else definitions
        cleaned, custom_errors = clean_custom_attributes(
            changes.get("custom_attributes"),
            found,
            current=dict(user.custom_attributes or {}) if not creating else {},
            creating=creating,
        )
        errors.update(custom_errors)
        if not custom_errors:
            user.custom_attributes = cleaned
    return errors


def reports_affected(user_ids: Collection[Any], attributes: Collection[str] | None) -> tuple[list[Any], set[str]]:
    """The direct reports of `user_ids` whose `manager.*` keys changed with `attributes` (a user's
    changed keys), and those keys, e.g. {"manager.display_name"}.

    For listeners of apps.directory.changes that send manager.displayName and the like: the
    directory does not look the reports up on every write (a SCIM PATCH stays one read and one
    write); a listener that maps a `manager.*` key asks here, only when it does.
    """
    if attributes is None:
        return [], set()
    shown = {f"manager.{key}" for key in MANAGER_KEYS_SHOWN_ON_REPORTS if key in attributes}
    if not shown or not user_ids:
        return [], set()
    return list(User.objects.filter(manager_id__in=list(user_ids)).values_list("pk", flat=True)), shown


def detach_reports(user: User) -> list[str]:
    """Clear the manager of everyone `user` manages (before `user` is deleted); their ids."""
    report_ids = list(User.objects.filter(manager_id=user.pk).values_list("pk", flat=True))
    if report_ids:
        User.objects.filter(pk__in=report_ids).update(manager=None, updated=timezone.now())
        announce.user_changed(report_ids, "user.manager_removed", attributes={"manager"})
    return [str(pk) for pk in report_ids]
