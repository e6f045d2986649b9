"""The sign-in policy as the code that enforces it reads it: password length, MFA for everyone,
session lifetimes and lockout, editable at runtime (console Settings, `SignInPolicy`, changed
only through `sign_in_policy_update`, which validates and audits).

Inside a request it comes from the process's cache of rarely changed settings, which every
process drops the moment the policy row is written (apps.common.generations: the request checks
one token, read with the other caches' in one statement); outside a request (Celery, management
commands) every read goes to the database. Until an admin saves the policy, it is the
deployment's settings, read at the time of the call.
"""

from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from apps.audit.services import audit_record
from apps.common import generations
from apps.common.db import hot_path_cursor
from apps.common.errors import ApplicationError
from apps.portal.models import SignInPolicy

# A lockout that only an admin lifts (cool-off 0) is, to django-axes, one that lasts a century:
# its callable setting has no value for "for ever".
_UNTIL_UNLOCKED = timedelta(days=36500)


@dataclass(frozen=True)
class SignInPolicyValues:
    password_min_length: int
    mfa_required: bool
    session_idle_seconds: int
    session_lifetime_seconds: int
    lockout_failure_limit: int
    lockout_cooloff_seconds: int
    lockout_address_failure_limit: int
    lockout_address_cooloff_seconds: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


POLICY_FIELDS = tuple(field.name for field in fields(SignInPolicyValues))


def policy_defaults() -> SignInPolicyValues:
    """The policy the deployment's settings describe (used until an admin saves one)."""
    return SignInPolicyValues(
        password_min_length=settings.PASSWORD_MIN_LENGTH,
        mfa_required=settings.PORTAL_MFA_REQUIRED,
        session_idle_seconds=settings.PORTAL_SESSION_IDLE_SECONDS,
        session_lifetime_seconds=settings.SESSION_COOKIE_AGE,
        lockout_failure_limit=settings.PORTAL_LOCKOUT_FAILURE_LIMIT,
        lockout_cooloff_seconds=settings.PORTAL_LOCKOUT_COOLOFF_SECONDS,
        lockout_address_failure_limit=settings.PORTAL_LOCKOUT_ADDRESS_FAILURE_LIMIT,
        lockout_address_cooloff_seconds=settings.PORTAL_LOCKOUT_ADDRESS_COOLOFF_SECONDS,
    )


# The cache's generation: replaced whenever the policy's table changes (apps.common.generations).
POLICY_GENERATION = "portal.sign_in_policy"


def forget_policy() -> None:
    """After a change: the rest of this request reads the new policy."""
    generations.forget_tokens()


@cache
def _policy_sql() -> str:
    table = SignInPolicy._meta.db_table
    columns = ", ".join(f'"{SignInPolicy._meta.get_field(name).column}"' for name in POLICY_FIELDS)
    return f'SELECT {columns} FROM "{table}" WHERE "id" = %s'  # noqa: S608 - names from the model


def _row_values(row: tuple) -> dict[str, Any]:
    # SQLite hands booleans back as integers; the dataclass compares them to True/False.
    values = dict(zip(POLICY_FIELDS, row, strict=True))
    values["mfa_required"] = bool(values["mfa_required"])
    return values


def sign_in_policy() -> SignInPolicyValues:
    """The policy in force: the saved row, or the settings' defaults when there is none."""
    saved = generations.cached(POLICY_GENERATION, None, _read_saved_policy)
    # Without a saved row, the settings of the moment (not cached: they are no database change).
    return saved or policy_defaults()


def _read_saved_policy() -> SignInPolicyValues | None:
    # Signed-in requests all need it (the idle-timeout middleware): a prepared statement, not the
    # ORM, whose compile cost most of the 0.45 ms this read took.
    with hot_path_cursor() as cursor:
        cursor.execute(_policy_sql(), [SignInPolicy.SINGLETON_ID])
        row = cursor.fetchone()
    return SignInPolicyValues(**_row_values(row)) if row else None


def policy_is_saved() -> bool:
    """Has an admin saved the policy (or is it still the settings' defaults)?"""
    return SignInPolicy.objects.filter(pk=SignInPolicy.SINGLETON_ID).exists()


# --- Changing it (console Settings) -----------------------------------------------------------

# What an admin may set: wide enough for any sane deployment, narrow enough that a slip of the
# keyboard cannot switch protection off (a 1-character password, a lockout after 1000 tries).
# An address lock stops everyone behind that address (an office NAT, a VPN exit), so it always
# lifts by itself, within a day at most.
POLICY_LIMITS: dict[str, tuple[int, int]] = {
    "password_min_length": (8, 128),
    "session_idle_seconds": (5 * 60, 7 * 24 * 3600),
    "session_lifetime_seconds": (15 * 60, 30 * 24 * 3600),
    "lockout_failure_limit": (3, 100),
    "lockout_cooloff_seconds": (0, 30 * 24 * 3600),
    "lockout_address_failure_limit": (10, 1000),
    "lockout_address_cooloff_seconds": (60, 24 * 3600),
}


def _validate_policy(values: SignInPolicyValues) -> None:
    errors: dict[str, list[str]] = {}
    for name, (low, high) in POLICY_LIMITS.items():
        value = getattr(values, name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors[name] = [f"Choose a value between {low} and {high}."]
    if 0 < values.lockout_cooloff_seconds < 60:
        errors.setdefault("lockout_cooloff_seconds", ["A cool-off lasts one minute at least (0: until unlocked)."])
    if not errors.keys() & {"session_idle_seconds", "session_lifetime_seconds"} and (
        values.session_idle_seconds > values.session_lifetime_seconds
    ):
        errors["session_idle_seconds"] = ["The idle timeout cannot be longer than the session lifetime."]
    if not errors.keys() & {"lockout_failure_limit", "lockout_address_failure_limit"} and (
        values.lockout_address_failure_limit < values.lockout_failure_limit
    ):
        # Otherwise one address's failures lock everyone behind it before any one account locks.
        errors["lockout_address_failure_limit"] = [
            f"An address locks no sooner than one account: choose {values.lockout_failure_limit} or more."
        ]
    if errors:
        raise ValidationError(errors)


def sign_in_policy_update(*, actor: Any | None, **changes: Any) -> SignInPolicyValues:
    """Change the password and session policy; it applies from the next request on, everywhere.

    Sessions already open are measured against the new idle timeout and lifetime at their next
    request; passwords already set are not checked again.
    """
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown policy fields: {', '.join(sorted(unknown))}.", code="unknown_field")
    with transaction.atomic():
        row = SignInPolicy.objects.select_for_update().filter(pk=SignInPolicy.SINGLETON_ID).first()
        before = (
            SignInPolicyValues(**{name: getattr(row, name) for name in POLICY_FIELDS}) if row else policy_defaults()
        )
        after = SignInPolicyValues(**{**before.as_dict(), **changes})
        _validate_policy(after)
        # The row is read and locked above: write it (or its first version) without reading it again.
        policy = row or SignInPolicy(pk=SignInPolicy.SINGLETON_ID)
        for name, value in after.as_dict().items():
            setattr(policy, name, value)
        policy.save()
        changed = [name for name in POLICY_FIELDS if getattr(before, name) != getattr(after, name)]
        if changed:
            audit_record(
                actor=actor,
                action="portal.policy.update",
                target_label="sign-in policy",
                before={name: getattr(before, name) for name in changed},
                after={name: getattr(after, name) for name in changed},
            )
    forget_policy()
    return after


# --- django-axes callables (AXES_FAILURE_LIMIT, AXES_COOLOFF_TIME) ----------------------------
# apps.portal.lockout.PortalLockoutHandler judges accounts and addresses with the policy itself;
# axes reads these for what it does on its own (its attempt clean-up, its default messages).


def lockout_failure_limit(request: HttpRequest | None = None, credentials: Any = None) -> int:
    """The account limit (axes has one limit; the address limit is the handler's own)."""
    return sign_in_policy().lockout_failure_limit


def lockout_attempt_retention(request: HttpRequest | None = None) -> timedelta:
    """How long a failed attempt is kept: the longer of the two cool-offs, since one row counts
    for both its account and its address. axes deletes older rows before recording a failure."""
    policy = sign_in_policy()
    if not policy.lockout_cooloff_seconds:
        return _UNTIL_UNLOCKED
    return timedelta(seconds=max(policy.lockout_cooloff_seconds, policy.lockout_address_cooloff_seconds))


def duration_text(seconds: int) -> str:
    """A cool-off in words ("1 hour", "30 minutes"); empty for 0 (only an admin lifts it)."""
    if not seconds:
        return ""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# --- Password validation (AUTH_PASSWORD_VALIDATORS) ------------------------------------------


class PolicyMinimumLengthValidator:
    """Django's minimum-length check, with the length taken from the sign-in policy at each call."""

    def validate(self, password: str, user: Any = None) -> None:
        min_length = sign_in_policy().password_min_length
        if len(password) < min_length:
            raise ValidationError(
                f"This password is too short. It must contain at least {min_length} characters.",
                code="password_too_short",
                params={"min_length": min_length},
            )

    def get_help_text(self) -> str:
        return f"Your password must contain at least {sign_in_policy().password_min_length} characters."
