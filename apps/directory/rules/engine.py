"""Membership of rule-based groups: derived set-wise in SQL when a rule changes, evaluated in Python
for the rules that read what changed when one user changes; every difference written, audited with
the rule as its cause, and announced to the connectors (apps.directory.changes).
"""

import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from apps.audit.services import Actor, AuditEntry, audit_record_many
from apps.common.db import batched_statements, hot_path_cursor
from apps.directory import changes as announce
from apps.directory.attributes import CUSTOM_PREFIX
from apps.directory.models import (
    ExceptionKind,
    Group,
    GroupRule,
    GroupRuleAttribute,
    GroupRuleException,
    Membership,
    User,
)
from apps.directory.rules.attributes import RuleAttribute, rule_attributes
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


def _table(model: type) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _rules_reading(attributes: Iterable[str] | None) -> list[tuple[Any, str, Any, str, Any]]:
    """(group id, group name, rule version, match, conditions) of the rules reading any of
    `attributes` (None: all), as the database returns them: written-out SQL read without the ORM's
    converters, since at 1,000 rules decoding every rule's JSON and timestamp cost more than the
    query; the conditions are decoded only for a rule not parsed yet (_parsed_rule)."""
    # Table names come from the models; the only values are bound parameters.
    sql = (
        f'SELECT r."group_id", g."name", r."updated", r."match", r."conditions" FROM {_table(GroupRule)} r '  # noqa: S608
        f'JOIN {_table(Group)} g ON g."id" = r."group_id"'
    )
    params: list[Any] = []
    if attributes is not None:
        names = sorted(set(attributes))
        if not names:
            return []
        placeholders = ", ".join(["%s"] * len(names))
        sql += (
            f' WHERE r."group_id" IN (SELECT a."rule_id" FROM {_table(GroupRuleAttribute)} a '  # noqa: S608
            f'WHERE a."attribute" IN ({placeholders}))'
        )
        params = names
    with hot_path_cursor() as cursor:
        cursor.execute(sql, params)  # table names from the models; values bound
        return cursor.fetchall()


def _standing(user: User) -> tuple[set, dict]:
    """The rule-based groups `user` is in, and the user's exceptions, in one query (ids as the
    database returns them, comparable with _rules_reading's)."""
    user_id = Membership._meta.get_field("user").get_db_prep_value(user.pk, connection)
    sql = (
        f"SELECT m.\"group_id\", '' FROM {_table(Membership)} m "  # noqa: S608
        f'JOIN {_table(GroupRule)} r ON r."group_id" = m."group_id" WHERE m."user_id" = %s '
        f'UNION ALL SELECT e."rule_id", e."kind" FROM {_table(GroupRuleException)} e WHERE e."user_id" = %s'
    )
    member_of, kinds = set(), {}
    with hot_path_cursor() as cursor:
        cursor.execute(sql, [user_id, user_id])
        for group_id, kind in cursor.fetchall():
            if kind:
                kinds[group_id] = kind
            else:
                member_of.add(group_id)
    return member_of, kinds


def _reads_custom(rows: list[tuple[Any, str, Any, str, Any]]) -> bool:
    # On the stored JSON's text: the key appears only as an attribute's name.
    return any(
        f'"{CUSTOM_PREFIX}' in (conditions if isinstance(conditions, str) else json.dumps(conditions))
        for *_, conditions in rows
    )


# Parsed rules, by (group, the rule's `updated`, the registry's shape): a rule is parsed once per
# process rather than on every user change. Not a cache of state another worker could change
# unseen: the key is read from the database each time, so an edited rule or a custom attribute of
# a new type is a new key (and the old entry ages out).
_PARSED_RULES: OrderedDict = OrderedDict()
PARSED_RULES_KEPT = 20_000


def _registry_fingerprint(registry: dict[str, RuleAttribute]) -> tuple:
    return tuple(
        (name, attribute.type, attribute.multi_valued, attribute.choices)
        for name, attribute in registry.items()
        if name.startswith(CUSTOM_PREFIX)
    )


def _parsed_rule(group_id: Any, version: Any, fingerprint: tuple, match: str, conditions: Any, registry: dict) -> Rule:
    key = (group_id, version, fingerprint)
    rule = _PARSED_RULES.get(key)
    if rule is None:
        if isinstance(conditions, str | bytes):
            conditions = json.loads(conditions)
        rule = parse_rule(match, conditions, attributes=registry)
        _PARSED_RULES[key] = rule
        if len(_PARSED_RULES) > PARSED_RULES_KEPT:
            _PARSED_RULES.popitem(last=False)
    return rule


def reevaluate_user(*, actor: Actor, user: User, attributes: Iterable[str] | None, trigger: str) -> None:
    """After `user` changed (in the same transaction): the rule-based groups whose rules read one of
    `attributes` (None: every rule, for a new user) take the user in or out.

    Two reads (the rules reading what changed, with their groups' names; the user's memberships of
    rule-based groups and exceptions), a third for the custom attributes' definitions only when a
    rule reads one; writes only when a membership changes, sent together.
    """
    rows = _rules_reading(attributes)
    if not rows:
        return
    member_of, exceptions = _standing(user)
    registry = rule_attributes(custom=_reads_custom(rows))
    joins: dict[Any, tuple[str, Rule]] = {}
    leaves: dict[Any, tuple[str, Rule]] = {}
    fingerprint = _registry_fingerprint(registry)
    values: dict[str, list] = {}  # the user's values, read once for every rule
    for group_id, group_name, version, match, conditions in rows:
        try:
            rule = _parsed_rule(group_id, version, fingerprint, match, conditions, registry)
        except ValidationError as exc:
            # An attribute the rule reads is gone or changed shape: the group keeps its members
            # until someone edits the rule, which the console then shows as invalid.
            logger.warning("group rule %s cannot be evaluated: %s", group_id, exc.messages)
            continue
        kind = exceptions.get(group_id)
        wanted = kind == ExceptionKind.INCLUDE or (kind != ExceptionKind.EXCLUDE and rule.matches(user, values))
        if wanted and group_id not in member_of:
            joins[group_id] = (group_name, rule)
        elif not wanted and group_id in member_of:
            leaves[group_id] = (group_name, rule)
    if joins or leaves:
        _write_user_changes(actor=actor, user=user, joins=joins, leaves=leaves, trigger=trigger)


def _write_user_changes(*, actor: Actor, user: User, joins: dict, leaves: dict, trigger: str) -> None:
    """The memberships, the groups' lastModified, an audit row per group and the announcements, in
    one round trip where the database allows (apps.common.db.batched_statements)."""
    now = timezone.now()
    groups = {}
    for raw_id, (name, _) in {**joins, **leaves}.items():
        group = groups[raw_id] = Group(pk=uuid.UUID(str(raw_id)), name=name, updated=now)
        group._state.adding, group._state.db = False, connection.alias
    row = [(user.pk, user.username)]
    # In the caller's transaction (the user's change); one of its own if called outside any.
    with transaction.atomic(savepoint=False), batched_statements():
        if joins:
            # Nothing read back (no RETURNING): a membership another transaction just made is kept.
            Membership.objects.bulk_create(
                [Membership(group=groups[raw_id], user=user) for raw_id in joins], ignore_conflicts=True
            )
        if leaves:
            Membership.objects.filter(user=user, group_id__in=[groups[raw_id].pk for raw_id in leaves]).delete()
        Group.objects.filter(pk__in=[group.pk for group in groups.values()]).update(updated=now)
        for changes, removed, action in ((joins, False, MEMBER_ADD_ACTION), (leaves, True, MEMBER_REMOVE_ACTION)):
            entries = []
            for group_id, (_, rule) in changes.items():
                entries += _member_entries(row, _cause(groups[group_id], rule, trigger), removed=removed)
            audit_record_many(actor=actor, action=action, entries=entries)
        announce.groups_changed(list(groups.values()), "group.rule", member_ids=[user.pk])


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
