"""What the edges call to make a group rule-based, change its rule or exceptions, or make it manual
again. Each call re-derives the membership set-wise in the same transaction (engine.apply_plan).

Mass removal: a rule change that would take more than settings.GROUP_RULE_CONFIRM_REMOVALS members
out of a group at once is refused with `RemovalConfirmationRequired` (its count and the threshold)
unless the caller passes `confirm_removals=True`; the console shows the count and asks, the API
wants the flag. This is the directory's own check, before anything is written: the directory may
not import provisioning, and the provisioning circuit breaker (apps.provisioning.breaker) is left to
do its job downstream: the removals reach the outbox as ordinary membership changes, so a confirmed
rule change that would deprovision more users of a connector than its threshold still pauses that
connector and waits for an admin's approval there.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError, ConflictError
from apps.directory.models import ExceptionKind, Group, GroupRule, GroupRuleAttribute, GroupRuleException, User
from apps.directory.roles import require_reach_query
from apps.directory.rules.conditions import Rule, parse_rule
from apps.directory.rules.engine import apply_plan, groups_with_rules_reading, plan_membership


class RuleBasedMembershipError(ApplicationError):
    """Members of a rule-based group follow its rule: they are not added or removed one by one."""

    def __init__(self, group: Group) -> None:
        super().__init__(
            f"{group.name} is a rule-based group: its members follow its rule. Change the rule, or "
            "add the user to its include or exclude list, instead.",
            code="rule_based_group",
        )


class RemovalConfirmationRequired(ApplicationError):
    def __init__(self, removals: int, threshold: int) -> None:
        super().__init__(
            f"This rule change would remove {removals} members at once (more than {threshold}); "
            "confirm the removals to save it.",
            code="confirm_removals",
            extra={"removals": removals, "threshold": threshold},
        )


def removal_threshold() -> int:
    return settings.GROUP_RULE_CONFIRM_REMOVALS


def is_rule_based(group: Group) -> bool:
    return GroupRule.objects.filter(pk=group.pk).exists()


def require_manual_membership(group: Group) -> None:
    """Called by every service that adds or removes members one by one."""
    if is_rule_based(group):
        raise RuleBasedMembershipError(group)


def require_no_rule_reads(attribute: str) -> None:
    """Before an attribute goes (a custom attribute deleted): no group rule may read it."""
    groups = groups_with_rules_reading([attribute])
    if groups:
        names = ", ".join(group.name for group in groups[:10])
        raise ConflictError(
            f"{attribute} is read by the rule of {names}: change or remove those rules first.",
            code="attribute_in_use",
            extra={"groups": [str(group.pk) for group in groups]},
        )


@dataclass(frozen=True)
class RuleSaved:
    rule: Rule
    added: int
    removed: int


def _exception_ids(include: Iterable[User], exclude: Iterable[User]) -> tuple[list, list]:
    include_ids = list(dict.fromkeys(user.pk for user in include))
    exclude_ids = list(dict.fromkeys(user.pk for user in exclude))
    both = set(include_ids) & set(exclude_ids)
    if both:
        names = sorted(User.objects.filter(pk__in=both).values_list("username", flat=True))
        raise ValidationError({"exclude": [f"{', '.join(names[:10])} cannot be both included and excluded."]})
    return include_ids, exclude_ids


def _rule_snapshot(rule: Rule | None, include: list, exclude: list) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {
        "match": rule.match,
        "conditions": rule.conditions_json(),
        "rule": rule.describe(),
        "include": [str(pk) for pk in include],
        "exclude": [str(pk) for pk in exclude],
    }


def _current(group: Group) -> tuple[Rule | None, list, list]:
    stored = GroupRule.objects.filter(pk=group.pk).first()
    if stored is None:
        return None, [], []
    kinds = list(GroupRuleException.objects.filter(rule=stored).values_list("user_id", "kind"))
    include = [pk for pk, kind in kinds if kind == ExceptionKind.INCLUDE]
    exclude = [pk for pk, kind in kinds if kind == ExceptionKind.EXCLUDE]
    try:
        return parse_rule(stored.match, stored.conditions), include, exclude
    except ValidationError:
        return None, include, exclude


@transaction.atomic
def group_rule_save(
    *,
    actor: Actor,
    group: Group,
    match: str,
    conditions: list[dict],
    include: Iterable[User] = (),
    exclude: Iterable[User] = (),
    confirm_removals: bool = False,
) -> RuleSaved:
    """Make `group` rule-based with this rule and these exceptions (or change them), and re-derive its
    members in bulk. Raises ValidationError for a bad rule, RemovalConfirmationRequired as above."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    rule = parse_rule(match, conditions)
    include_ids, exclude_ids = _exception_ids(include, exclude)
    plan = plan_membership(group, rule, include=include_ids, exclude=exclude_ids)
    removals = plan.removed.count()
    if removals > removal_threshold() and not confirm_removals:
        raise RemovalConfirmationRequired(removals, removal_threshold())
    # Taking an administrator in or out of a group is a change of their account.
    require_reach_query(actor, plan.added)
    require_reach_query(actor, plan.removed)

    before_rule, before_include, before_exclude = _current(group)
    stored, _ = GroupRule.objects.update_or_create(
        group=group, defaults={"match": rule.match, "conditions": rule.conditions_json()}
    )
    GroupRuleAttribute.objects.filter(rule=stored).delete()
    GroupRuleAttribute.objects.bulk_create(
        [GroupRuleAttribute(rule=stored, attribute=name) for name in sorted(rule.attribute_names)]
    )
    GroupRuleException.objects.filter(rule=stored).delete()
    GroupRuleException.objects.bulk_create(
        [GroupRuleException(rule=stored, user_id=pk, kind=ExceptionKind.INCLUDE) for pk in include_ids]
        + [GroupRuleException(rule=stored, user_id=pk, kind=ExceptionKind.EXCLUDE) for pk in exclude_ids]
    )
    added, removed = apply_plan(actor=actor, plan=plan, trigger="group.rule.set")
    audit_record(
        actor=actor,
        action="group.rule.set",
        target=group,
        before=_rule_snapshot(before_rule, before_include, before_exclude),
        after={**_rule_snapshot(rule, include_ids, exclude_ids), "added": len(added), "removed": len(removed)},
    )
    return RuleSaved(rule=rule, added=len(added), removed=len(removed))


@transaction.atomic
def group_rule_remove(*, actor: Actor, group: Group) -> None:
    """Make a rule-based group manual again: its members stay, now edited one by one."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    before_rule, include, exclude = _current(group)
    deleted, _ = GroupRule.objects.filter(pk=group.pk).delete()
    if deleted:
        audit_record(
            actor=actor, action="group.rule.remove", target=group, before=_rule_snapshot(before_rule, include, exclude)
        )
