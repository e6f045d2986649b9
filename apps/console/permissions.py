"""Who may do what in the console: four roles, each a set of capabilities.

Views ask for a capability (`console_view(Capability.MANAGE_CONNECTORS)`), never for a role, so a
role can change without touching the views. Changes to another staff account also need
`can_manage_user`: a help desk that could reset an admin's password would be an admin.
"""

from collections.abc import Iterable
from enum import StrEnum

from django.db.models import Q

from apps.directory.models import AdminRole, Group, User
from apps.directory.services import staff_account_change_allowed


class Capability(StrEnum):
    VIEW_DIRECTORY = "view_directory"  # dashboard, users, groups
    MANAGE_DIRECTORY = "manage_directory"  # create/edit/suspend/delete users and groups, members, resets
    VIEW_CONNECTORS = "view_connectors"  # connectors, provisioning, SAML tracer, keys, tokens (read)
    MANAGE_CONNECTORS = "manage_connectors"  # connectors, assignments, sync/retry/pause, holds
    MANAGE_KEYS = "manage_keys"  # IdP signing keys: rotate, activate
    MANAGE_TOKENS = "manage_tokens"  # SCIM and API tokens
    VIEW_AUDIT = "view_audit"
    MANAGE_SETTINGS = "manage_settings"  # delegated login, password and session policy
    MANAGE_ROLES = "manage_roles"  # make someone staff, change a role


ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    AdminRole.SUPER_ADMIN: frozenset(Capability),
    AdminRole.ADMIN: frozenset(Capability) - {Capability.MANAGE_SETTINGS, Capability.MANAGE_ROLES},
    AdminRole.HELPDESK: frozenset({Capability.VIEW_DIRECTORY, Capability.MANAGE_DIRECTORY}),
    AdminRole.READONLY: frozenset({Capability.VIEW_DIRECTORY, Capability.VIEW_CONNECTORS, Capability.VIEW_AUDIT}),
}


def capabilities_of(user: User) -> frozenset[Capability]:
    if not (user.is_authenticated and user.is_active):
        return frozenset()
    return ROLE_CAPABILITIES.get(user.console_role, frozenset())


def has_capability(user: User, capability: Capability | str) -> bool:
    return Capability(capability) in capabilities_of(user)


def can_manage_user(actor: User, target: User) -> bool:
    """May `actor` change `target` (profile, status, password, MFA, groups, deletion)?"""
    return has_capability(actor, Capability.MANAGE_DIRECTORY) and staff_account_change_allowed(actor, target)


# Staff accounts: the only ones `can_manage_user` may refuse to someone who manages the directory.
STAFF = Q(is_staff=True) | Q(is_superuser=True)


def usernames_beyond_reach(actor: User, users: Iterable[User]) -> list[str]:
    """Usernames of those of `users` whose account, and so whose groups, `actor` may not change."""
    return sorted(user.username for user in users if not can_manage_user(actor, user))


def administrators_beyond_reach(actor: User, group: Group) -> list[str]:
    """The group's staff members whose groups `actor` may not change: deleting the group would."""
    return usernames_beyond_reach(actor, User.objects.filter(memberships__group=group).filter(STAFF))
