"""Reads of group rules: the stored rule of a group, its exceptions, and a preview of a rule."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from apps.directory.models import ExceptionKind, Group, GroupRule, GroupRuleException, User
from apps.directory.rules.conditions import Rule, parse_rule
from apps.directory.rules.engine import plan_membership
from apps.directory.rules.services import removal_threshold

PREVIEW_SAMPLE_SIZE = 5


@dataclass(frozen=True)
class StoredRule:
    match: str
    conditions: list[dict]
    include: list[User]
    exclude: list[User]
    rule: Rule | None  # None when it no longer validates (an attribute it reads was deleted)
    error: str = ""

    @property
    def description(self) -> str:
        return self.rule.describe() if self.rule else ""


def group_rule(group: Group) -> StoredRule | None:
    stored = GroupRule.objects.filter(pk=group.pk).first()
    if stored is None:
        return None
    exceptions = list(GroupRuleException.objects.filter(rule=stored).select_related("user").order_by("user__username"))
    include = [row.user for row in exceptions if row.kind == ExceptionKind.INCLUDE]
    exclude = [row.user for row in exceptions if row.kind == ExceptionKind.EXCLUDE]
    try:
        rule, error = parse_rule(stored.match, stored.conditions), ""
    except ValidationError as exc:
        rule, error = None, " ".join(exc.messages)
    return StoredRule(stored.match, stored.conditions, include, exclude, rule, error)


def rule_based_group_ids(group_ids: Iterable[Any]) -> set:
    return set(GroupRule.objects.filter(pk__in=list(group_ids)).values_list("group_id", flat=True))


@dataclass(frozen=True)
class RulePreview:
    rule: Rule
    matches: int
    added: int
    removed: int
    added_sample: list[str]
    removed_sample: list[str]
    threshold: int

    @property
    def needs_confirmation(self) -> bool:
        return self.removed > self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.describe(),
            "matches": self.matches,
            "added": self.added,
            "removed": self.removed,
            "added_sample": self.added_sample,
            "removed_sample": self.removed_sample,
            "confirmation_required": self.needs_confirmation,
            "removal_threshold": self.threshold,
        }


def group_rule_preview(
    group: Group, *, match: str, conditions: list[dict], include: Iterable[User] = (), exclude: Iterable[User] = ()
) -> RulePreview:
    """What saving this rule would do, without writing: "matches 312 users; 4 added, 2 removed"."""
    rule = parse_rule(match, conditions)
    plan = plan_membership(group, rule, include=[user.pk for user in include], exclude=[user.pk for user in exclude])

    def usernames(query) -> list[str]:
        return list(query.order_by("username").values_list("username", flat=True)[:PREVIEW_SAMPLE_SIZE])

    return RulePreview(
        rule=rule,
        matches=plan.target.count(),
        added=plan.added.count(),
        removed=plan.removed.count(),
        added_sample=usernames(plan.added),
        removed_sample=usernames(plan.removed),
        threshold=removal_threshold(),
    )
