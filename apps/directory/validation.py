"""Validation of users and groups before the directory's services write them: cleaned text,
field rules, password policy, and unique constraints turned into field errors."""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from apps.common.errors import field_error
from apps.directory.models import DISPLAY_NAME_MAX_LENGTH, Group, User

# Parts of the unique constraints' names, mapped to the field a lost race is reported on.
USER_UNIQUE_FIELDS = {"username": "username", "email": "email"}


def clean_text(values: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    cleaned = dict(values)
    for name in fields:
        if name in cleaned:
            value = cleaned[name]
            cleaned[name] = "" if value is None else str(value).strip()
    if cleaned.get("email"):
        local, _, domain = cleaned["email"].rpartition("@")
        cleaned["email"] = f"{local}@{domain.lower()}" if local else cleaned["email"]
    return cleaned


def user_clashes(user: User, unique: Iterable[str]) -> dict[str, list]:
    """Errors for those of the `unique` fields (username, email) another user already has."""
    errors: dict[str, list] = {}
    others = User.objects.exclude(pk=user.pk)
    if (
        "username" in unique
        and user.username
        and (others.alias(username_lower=Lower("username")).filter(username_lower=user.username.lower()).exists())
    ):
        errors["username"] = [ValidationError("A user with this username already exists.", code="unique")]
    if (
        user.email
        and "email" in unique
        # `.exclude(email="")` repeats the partial unique index's condition, so the index serves it.
        and others.exclude(email="").alias(email_lower=Lower("email")).filter(email_lower=user.email.lower()).exists()
    ):
        errors["email"] = [ValidationError("A user with this email already exists.", code="unique")]
    return errors


def validate_user(
    user: User, unique: Iterable[str] = ("username", "email"), *, errors: dict[str, list] | None = None
) -> None:
    """Field validation. Uniqueness is the unique constraints' (see save_user): the `unique` fields
    (those that may have changed) are only looked up here when the user is refused anyway, so that
    one answer names every problem. `errors`: those found already (the profile's), reported with
    these."""
    errors = dict(errors or {})
    try:
        # The manager was checked by apps.directory.profile (full_clean would look it up again).
        user.full_clean(
            exclude=["password", "last_login", "manager", *errors],
            validate_unique=False,
            validate_constraints=False,
        )
    except ValidationError as exc:
        errors.update(exc.error_dict)
    if not user.username and "username" not in errors:
        errors["username"] = [ValidationError("This field is required.", code="required")]
    if errors:
        clashes = user_clashes(user, [field for field in unique if field not in errors])
        raise ValidationError({**errors, **clashes})


def check_password_policy(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.error_list}) from exc


def refused_user_error(user: User, exc: IntegrityError, unique: Iterable[str]) -> ValidationError | None:
    """What to report when a constraint refused `user`: every field that clashes, as a pre-check
    would say (None if it was no clash on a username or email).

    Looking clashes up only after a refusal keeps two queries off every write that succeeds; the
    caller runs this outside the refused transaction (or savepoint), which can run no more queries.
    """
    clashes = user_clashes(user, unique)
    if clashes:
        return ValidationError(clashes)
    message = str(exc).lower()
    for constraint_part, field in USER_UNIQUE_FIELDS.items():
        if constraint_part in message:  # the other user is gone already: name the constraint's field
            return field_error(field, f"This {field} is already taken.", code="unique")
    return None


def save_user(user: User, *, unique: Iterable[str], update_fields: list[str] | None = None) -> None:
    """Save in a savepoint; a refusal by a unique constraint is reported on every clashing field."""
    try:
        with transaction.atomic():
            user.save(update_fields=update_fields)
    except IntegrityError as exc:
        error = refused_user_error(user, exc, unique)
        if error is not None:
            raise error from exc
        raise


def save_unique(instance: User | Group, *, fields: dict[str, str]) -> None:
    """Save, turning a lost uniqueness race into the same field error the pre-check gives."""
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        message = str(exc).lower()
        for constraint_part, field in fields.items():
            if constraint_part in message:
                raise field_error(field, f"This {field} is already taken.", code="unique") from exc
        raise


def default_display_name(first_name: str, last_name: str) -> str:
    return f"{first_name} {last_name}".strip()[:DISPLAY_NAME_MAX_LENGTH]
