"""Staff roles: what each may do, and whose account each may change.

A role is a set of capabilities. Console views, API endpoints and SCIM ask for a capability
(`has_capability(user, Capability.MANAGE_CONNECTORS)`), never for a role, so a role can change
without touching them.

Rank is the second rule, and the directory's services enforce it for every caller: a staff account
is changed (profile, status, password, second factor, deletion, group memberships) only by someone
of at least its rank, and never by a help desk, its own included: group membership grants apps.
Whoever reaches `apps.directory.services` (console, admin API, SCIM and its Bulk, CSV imports, Celery
tasks) meets the same `require_reach`.
"""

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from django.db.models import Q, QuerySet

from apps.audit.services import SystemActor
from apps.common.errors import PermissionRefused
from apps.directory.models import AdminRole, Group, User


class Capability(StrEnum):
    VIEW_DIRECTORY = "view_directory"  # dashboard, users, groups
    MANAGE_DIRECTORY = "manage_directory"  # create/edit/suspend/delete users and groups, members, resets
    VIEW_CONNECTORS = "view_connectors"  # connectors, provisioning, SAML tracer, keys, tokens (read)
    MANAGE_CONNECTORS = "manage_connectors"  # connectors, assignments, sync/retry/pause, holds
    MANAGE_KEYS = "manage_keys"  # IdP signing keys: rotate, activate
    MANAGE_TOKENS = "manage_tokens"  # SCIM and API tokens
    VIEW_AUDIT = "view_audit"
    MANAGE_SETTINGS = "manage_settings"  # delegated login, password and session policy
    MANAGE_ROLES = "manage_roles"  # make someone staff, change a role; SCIM tokens that manage staff
    # Custom profile attributes: their definitions (not users' values, which MANAGE_DIRECTORY edits).
    MANAGE_PROFILE_SCHEMA = "manage_profile_schema"


ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    AdminRole.SUPER_ADMIN: frozenset(Capability),
    AdminRole.ADMIN: frozenset(Capability) - {Capability.MANAGE_SETTINGS, Capability.MANAGE_ROLES},
    AdminRole.HELPDESK: frozenset({Capability.VIEW_DIRECTORY, Capability.MANAGE_DIRECTORY}),
    AdminRole.READONLY: frozenset({Capability.VIEW_DIRECTORY, Capability.VIEW_CONNECTORS, Capability.VIEW_AUDIT}),
}

# Higher outranks lower.
_ROLE_RANK = {"": 0, AdminRole.READONLY: 1, AdminRole.HELPDESK: 2, AdminRole.ADMIN: 3, AdminRole.SUPER_ADMIN: 4}

# Staff accounts: the only ones rank protects.
STAFF = Q(is_staff=True) | Q(is_superuser=True)


class StaffAccountProtected(PermissionRefused):
    """The caller's rank (or token) does not reach a staff account it tried to change."""

    def __init__(self, actor: Any, usernames: Iterable[str]) -> None:
        names = sorted(usernames)
        listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        if isinstance(actor, SystemActor):
            message = (
                f"This SCIM token may not change administrators' accounts or groups ({listed}); "
                "only a super-admin can create a token that may."
            )
        else:
            message = f"Your role does not allow changing these administrators' accounts or groups: {listed}."
        super().__init__(message, code="staff_account_protected", extra={"accounts": names})


def capabilities_of(user: Any) -> frozenset[Capability]:
    if not (getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)):
        return frozenset()
    return ROLE_CAPABILITIES.get(user.console_role, frozenset())


def has_capability(user: Any, capability: Capability | str) -> bool:
    return Capability(capability) in capabilities_of(user)


def is_super_admin(user: Any) -> bool:
    return getattr(user, "console_role", "") == AdminRole.SUPER_ADMIN and bool(getattr(user, "is_active", False))


def staff_account_change_allowed(actor: Any, target: User) -> bool:
    """Whether a person `actor`'s role reaches `target` if `target` is a staff account (anyone reaches
    the others; what the actor may do at all is the caller's check). No person reaches none."""
    if not target.console_role:
        return True
    actor_role = getattr(actor, "console_role", "")
    if not actor_role or actor_role == AdminRole.HELPDESK:
        return False
    return _ROLE_RANK[actor_role] >= _ROLE_RANK[target.console_role]


def actor_reaches(actor: Any, target: User) -> bool:
    """Whether `actor` may change `target` as far as rank goes.

    `None` is the portal itself (management commands run by an operator, just-in-time creation at
    sign-in); a SystemActor (a SCIM client's token) has no rank and reaches staff accounts only when
    a super-admin created it to; a person reaches as their role says (and must manage the directory)."""
    if actor is None or not target.console_role:
        return True
    if isinstance(actor, SystemActor):
        return actor.manages_staff
    return can_manage_user(actor, target)


def _reaches_every_staff_account(actor: Any) -> bool:
    if actor is None:
        return True
    if isinstance(actor, SystemActor):
        return actor.manages_staff
    return is_super_admin(actor)


def require_reach(actor: Any, targets: Iterable[User]) -> None:
    """Refuse (StaffAccountProtected) when `actor` may not change one of `targets`."""
    refused = [target.username for target in targets if not actor_reaches(actor, target)]
    if refused:
        raise StaffAccountProtected(actor, refused)


def require_reach_query(actor: Any, users: QuerySet) -> None:
    """`require_reach` for the users of a query (by id, a group's members): one query for the staff
    among them, none when the actor reaches every staff account."""
    if not _reaches_every_staff_account(actor):
        require_reach(actor, users.filter(STAFF).only("username", "is_staff", "is_superuser", "admin_role"))


def can_manage_user(actor: Any, target: User) -> bool:
    """May the person `actor` change `target` (profile, status, password, MFA, groups, deletion)?"""
    return has_capability(actor, Capability.MANAGE_DIRECTORY) and staff_account_change_allowed(actor, target)


def usernames_beyond_reach(actor: Any, users: Iterable[User]) -> list[str]:
    """Usernames of those of `users` whose account, and so whose groups, `actor` may not change."""
    return sorted(user.username for user in users if not can_manage_user(actor, user))


def administrators_beyond_reach(actor: Any, group: Group) -> list[str]:
    """The group's staff members whose groups `actor` may not change: deleting the group would."""
    return usernames_beyond_reach(actor, User.objects.filter(memberships__group=group).filter(STAFF))
