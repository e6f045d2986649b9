"""Membership of rule-based groups: derived set-wise in SQL when a rule changes, evaluated in Python
for the rules that read what changed when one user changes; every difference written, audited with
the rule as its cause, and announced to the connectors (apps.directory.changes).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from apps.audit.services import Actor, AuditEntry, audit_record_many
from apps.directory import changes as announce
from apps.directory.models import (
    ExceptionKind,
    Group,
    GroupRule,
    GroupRuleAttribute,
    GroupRuleException,
    Membership,
    User,
)
from apps.directory.rules.attributes import rule_attributes
from apps.directory.rules.conditions import Rule, parse_rule

logger = logging.getLogger(__name__)

MEMBER_ADD_ACTION = "group.rule.member_add"
MEMBER_REMOVE_ACTION = "group.rule.member_remove"
_USER_TARGET_TYPE = User._meta.label_lower


@dataclass
class MembershipPlan:
    """What a rule (with its exceptions) makes of a group: the users it wants, those it would add
    and the members it would remove, as queries nothing has run yet."""

    group: Group
    rule: Rule
    target: QuerySet
    added: QuerySet
    removed: QuerySet
    include: list[Any] = field(default_factory=list)
    exclude: list[Any] = field(default_factory=list)


def plan_membership(
    group: Group, rule: Rule, *, include: Iterable[Any] = (), exclude: Iterable[Any] = ()
) -> MembershipPlan:
    """`include`/`exclude`: user ids always/never members, whatever the rule says."""
    include, exclude = list(include), list(exclude)
    wanted = rule.to_q()
    if include:
        wanted |= Q(pk__in=include)
    target = User.objects.filter(wanted)
    if exclude:
        target = target.exclude(pk__in=exclude)
    target = target.order_by()
    members = Membership.objects.filter(group=group).values("user_id")
    added = target.exclude(pk__in=members)
    removed = User.objects.filter(pk__in=members).exclude(pk__in=target.values("pk")).order_by()
    return MembershipPlan(
        group=group, rule=rule, target=target, added=added, removed=removed, include=include, exclude=exclude
    )


def _cause(group: Group, rule: Rule, trigger: str) -> dict[str, Any]:
    return {"group": {"id": str(group.pk), "name": group.name}, "rule": rule.describe(), "trigger": trigger}


def _member_entries(rows: list[tuple[Any, str]], cause: dict[str, Any], *, removed: bool) -> list[AuditEntry]:
    return [
        AuditEntry(
            target_type=_USER_TARGET_TYPE,
            target_id=str(pk),
            target_label=username,
            before={"cause": cause} if removed else None,
            after=None if removed else {"cause": cause},
        )
        for pk, username in rows
    ]


def _insert_selected(group: Group, users: QuerySet) -> None:
    """INSERT INTO membership ... SELECT: the rows never travel through Python."""
    select_sql, params = users.annotate(picked_id=F("pk")).values_list("picked_id").query.sql_with_params()
    table = connection.ops.quote_name(Membership._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(Membership._meta.get_field(name).column) for name in ("group", "user", "created")
    )
    group_value = Membership._meta.get_field("group").get_db_prep_save(group.pk, connection)
    created = Membership._meta.get_field("created").get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:
        # Names come from the models and the SELECT from the ORM; the values are bound parameters.
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT %s, picked.picked_id, %s "  # noqa: S608
            f"FROM ({select_sql}) picked",
            (group_value, created, *params),
        )


def apply_plan(*, actor: Actor, plan: MembershipPlan, trigger: str) -> tuple[list, list]:
    """Write the plan set-wise: one DELETE, one INSERT ... SELECT, a batch of audit rows (one per
    member added or removed, the rule as its cause) and one announcement. Returns (added, removed)
    as (id, username) rows."""
    group = plan.group
    added = list(plan.added.values_list("pk", "username"))
    removed = list(plan.removed.values_list("pk", "username"))
    if not added and not removed:
        return [], []
    if removed:
        Membership.objects.filter(group=group, user_id__in=plan.removed.values("pk")).delete()
    if added:
        _insert_selected(group, plan.added)
    group.updated = timezone.now()
    Group.objects.filter(pk=group.pk).update(updated=group.updated)
    cause = _cause(group, plan.rule, trigger)
    audit_record_many(actor=actor, action=MEMBER_ADD_ACTION, entries=_member_entries(added, cause, removed=False))
    audit_record_many(actor=actor, action=MEMBER_REMOVE_ACTION, entries=_member_entries(removed, cause, removed=True))
    announce.group_changed(group, "group.rule", member_ids=[pk for pk, _ in added] + [pk for pk, _ in removed])
    return added, removed


# --- One user changed --------------------------------------------------------------------------


def _rules_reading(attributes: Iterable[str] | None) -> list[tuple[Any, str, list]]:
    rules = GroupRule.objects.all()
    if attributes is not None:
        names = sorted(set(attributes))
        if not names:
            return []
        rules = rules.filter(pk__in=GroupRuleAttribute.objects.filter(attribute__in=names).values("rule_id"))
    return list(rules.order_by().values_list("group_id", "match", "conditions"))


def reevaluate_user(*, actor: Actor, user: User, attributes: Iterable[str] | None, trigger: str) -> None:
    """After `user` changed (in the same transaction): the rule-based groups whose rules read one of
    `attributes` (None: every rule, for a new user) take the user in or out.

    Three reads (the rules, the user's exceptions, the user's memberships among them); writes only
    when a membership changes.
    """
    rows = _rules_reading(attributes)
    if not rows:
        return
    group_ids = [group_id for group_id, _, _ in rows]
    exceptions = dict(GroupRuleException.objects.filter(user=user).values_list("rule_id", "kind"))
    member_of = set(
        Membership.objects.filter(user=user, group_id__in=group_ids).values_list("group_id", flat=True)
        if len(group_ids) <= 500
        else Membership.objects.filter(user=user, group__rule__isnull=False).values_list("group_id", flat=True)
    )
    joins: dict[Any, Rule] = {}
    leaves: dict[Any, Rule] = {}
    attributes = rule_attributes()
    for group_id, match, conditions in rows:
        try:
            rule = parse_rule(match, conditions, attributes=attributes)
        except ValidationError as exc:
            # An attribute the rule reads is gone (a custom attribute deleted): the group keeps its
            # members until someone edits the rule, which the console then shows as invalid.
            logger.warning("group rule %s cannot be evaluated: %s", group_id, exc.messages)
            continue
        kind = exceptions.get(group_id)
        wanted = kind == ExceptionKind.INCLUDE or (kind != ExceptionKind.EXCLUDE and rule.matches(user))
        if wanted and group_id not in member_of:
            joins[group_id] = rule
        elif not wanted and group_id in member_of:
            leaves[group_id] = rule
    if joins or leaves:
        _write_user_changes(actor=actor, user=user, joins=joins, leaves=leaves, trigger=trigger)


def _write_user_changes(*, actor: Actor, user: User, joins: dict, leaves: dict, trigger: str) -> None:
    now = timezone.now()
    if joins:
        Membership.objects.bulk_create([Membership(group_id=group_id, user=user) for group_id in joins])
    if leaves:
        Membership.objects.filter(user=user, group_id__in=list(leaves)).delete()
    groups = {group.pk: group for group in Group.objects.filter(pk__in=[*joins, *leaves]).only("id", "name")}
    Group.objects.filter(pk__in=list(groups)).update(updated=now)
    row = [(user.pk, user.username)]
    for group_ids, removed, action in ((joins, False, MEMBER_ADD_ACTION), (leaves, True, MEMBER_REMOVE_ACTION)):
        entries = []
        for group_id, rule in group_ids.items():
            entries += _member_entries(row, _cause(groups[group_id], rule, trigger), removed=removed)
        audit_record_many(actor=actor, action=action, entries=entries)
    for group in groups.values():
        group.updated = now
        announce.group_changed(group, "group.rule", member_ids=[user.pk])


# --- Many users changed at once ------------------------------------------------------------------


def groups_with_rules_reading(attributes: Iterable[str]) -> list[Group]:
    reading = GroupRuleAttribute.objects.filter(attribute__in=sorted(set(attributes))).values("rule_id")
    return list(Group.objects.filter(pk__in=reading).order_by("name"))


def rederive_rules_reading(*, actor: Actor, attributes: Iterable[str], trigger: str) -> int:
    """After a change of many users' values of `attributes` at once (a manager deleted, a custom
    attribute's values rewritten): the rules that read them re-derive their groups set-wise.

    A rule that no longer validates (its value does not fit a custom attribute's new type) raises
    the ValidationError, naming the group, so the change that broke it is rolled back.
    Returns how many memberships changed."""
    changed = 0
    rules = {rule.pk: rule for rule in GroupRule.objects.filter(group__in=groups_with_rules_reading(attributes))}
    registry = rule_attributes()
    exceptions = list(
        GroupRuleException.objects.filter(rule_id__in=list(rules)).values_list("rule_id", "user_id", "kind")
    )
    for group in groups_with_rules_reading(attributes):
        stored = rules[group.pk]
        try:
            rule = parse_rule(stored.match, stored.conditions, attributes=registry)
        except ValidationError as exc:
            raise ValidationError(f"The rule of {group.name} would no longer apply: {' '.join(exc.messages)}") from exc
        include = [
            user_id for rule_id, user_id, kind in exceptions if rule_id == group.pk and kind == ExceptionKind.INCLUDE
        ]
        exclude = [
            user_id for rule_id, user_id, kind in exceptions if rule_id == group.pk and kind == ExceptionKind.EXCLUDE
        ]
        added, removed = apply_plan(
            actor=actor, plan=plan_membership(group, rule, include=include, exclude=exclude), trigger=trigger
        )
        changed += len(added) + len(removed)
    return changed
