"""Group memberships from an upstream IdP: the groups its assertion names (one SAML attribute, chosen
per upstream) become directory memberships of the person signing in.

Only memberships the upstream gave are the upstream's to take back: each one is recorded
(UpstreamGroupMembership) and updated at every sign-in through that upstream; memberships an admin,
SCIM or another upstream gave are left alone. Changes go through apps.directory.services as the
portal itself (actor None), so they are audited and provisioned onward like any other.

Staff accounts are never changed from an assertion: their groups are the portal's to manage, under
the staff rank rule (apps.directory.roles), and an upstream grants or removes nothing of theirs.
"""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.functions import Lower

from apps.audit.services import audit_record
from apps.directory import services as directory_services
from apps.directory.models import GROUP_NAME_MAX_LENGTH, Group, User
from apps.directory.rules.selectors import rule_based_group_ids
from apps.saml_sp.models import GroupSync, UpstreamGroupMembership, UpstreamIdentityProvider

# More group values than this in one assertion are ignored past the limit (and audited as such).
MAX_GROUPS_PER_ASSERTION = 200


@dataclass
class GroupSyncResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.created)

    def as_audit(self) -> dict[str, Any]:
        data = {key: sorted(value) for key, value in vars(self).items() if isinstance(value, list) and value}
        if self.skipped:
            data["skipped"] = self.skipped
        return data


def group_names(upstream: UpstreamIdentityProvider, attributes: dict[str, Any]) -> tuple[list[str], bool]:
    """The distinct group names the assertion gives (case-insensitively), and whether some were cut."""
    values = attributes.get(upstream.groups_attribute) or []
    if not isinstance(values, list | tuple):
        values = [values]
    names: dict[str, str] = {}
    for value in values:
        name = str(value or "").strip()
        if name and len(name) <= GROUP_NAME_MAX_LENGTH:
            names.setdefault(name.lower(), name)
    ordered = list(names.values())
    return ordered[:MAX_GROUPS_PER_ASSERTION], len(ordered) > MAX_GROUPS_PER_ASSERTION


def _groups_named(names: list[str]) -> dict[str, Group]:
    lowered = [name.lower() for name in names]
    found = Group.objects.annotate(lower_name=Lower("name")).filter(lower_name__in=lowered)
    return {group.lower_name: group for group in found}


def _wanted_groups(upstream: UpstreamIdentityProvider, names: list[str], result: GroupSyncResult) -> dict:
    groups = _groups_named(names)
    for name in names:
        if name.lower() in groups:
            continue
        if upstream.groups_sync != GroupSync.CREATE_MISSING:
            result.unknown.append(name)
            continue
        try:
            with transaction.atomic():
                groups[name.lower()] = directory_services.group_create(actor=None, name=name)
            result.created.append(name)
        except ValidationError:
            # A group created meanwhile under the same name is joined; any other refusal is noted.
            existing = _groups_named([name]).get(name.lower())
            if existing is None:
                result.refused.append(name)
            else:
                groups[name.lower()] = existing
    wanted = {group.pk: group for group in groups.values()}
    # A rule-based group's members follow its rule, not an upstream's assertion.
    for group_id in rule_based_group_ids(wanted):
        result.refused.append(f"{wanted.pop(group_id).name} (rule-based)")
    return wanted


@transaction.atomic
def sync_upstream_groups(
    upstream: UpstreamIdentityProvider, user: User, attributes: dict[str, Any]
) -> GroupSyncResult | None:
    """Make the upstream's memberships of `user` those its assertion names. None when the upstream
    maps no groups."""
    if not upstream.groups_attribute:
        return None
    result = GroupSyncResult()
    if user.console_role:
        result.skipped = "staff_account"
        _audit(upstream, user, result)
        return result
    names, truncated = group_names(upstream, attributes)
    if truncated:
        result.skipped = f"more than {MAX_GROUPS_PER_ASSERTION} groups: the rest were ignored"
    wanted = _wanted_groups(upstream, names, result)
    recorded = {
        row.group_id: row
        for row in UpstreamGroupMembership.objects.filter(upstream=upstream, user=user).select_related("group")
    }
    member_of = set(user.memberships.values_list("group_id", flat=True))
    for group_id, group in wanted.items():
        if group_id in member_of:
            continue  # already a member: given by someone else, or by this upstream before
        directory_services.group_add_members(actor=None, group=group, users=[user])
        UpstreamGroupMembership.objects.get_or_create(upstream=upstream, user=user, group=group)
        result.added.append(group.name)
    rule_based = rule_based_group_ids(recorded)
    for group_id, row in recorded.items():
        if group_id in wanted:
            continue
        if group_id in member_of and group_id not in rule_based:
            directory_services.group_remove_members(actor=None, group=row.group, users=[user])
            result.removed.append(row.group.name)
        row.delete()
    if result.changed or result.unknown or result.refused or result.skipped:
        _audit(upstream, user, result)
    return result


def _audit(upstream: UpstreamIdentityProvider, user: User, result: GroupSyncResult) -> None:
    audit_record(
        actor=None,
        actor_label=f"saml_sp:{upstream.slug}",
        action="saml_sp.groups.sync",
        target=user,
        after={"upstream": upstream.slug, "attribute": upstream.groups_attribute, **result.as_audit()},
    )
