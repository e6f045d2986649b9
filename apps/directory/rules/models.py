"""The rule of a rule-based group, the attributes it reads, and its manual exceptions.

Imported by apps.directory.models (so Django sees them); the relations name their models as
strings, so this module imports nothing of the directory's and no import goes round a loop.
"""

from django.db import models


class RuleMatch(models.TextChoices):
    ALL = "all", "All conditions"
    ANY = "any", "Any condition"


class GroupRule(models.Model):
    """A group with a row here is rule-based: its members are derived, never edited one by one."""

    group = models.OneToOneField("directory.Group", on_delete=models.CASCADE, primary_key=True, related_name="rule")
    match = models.CharField(max_length=3, choices=RuleMatch.choices, default=RuleMatch.ALL)
    # [{"attribute": "department", "op": "eq", "value": "Engineering"}, ...], as validated by
    # apps.directory.rules.conditions.parse_rule.
    conditions = models.JSONField(default=list)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rule of {self.group_id}"


class GroupRuleAttribute(models.Model):
    """Which rules read an attribute: a user change re-evaluates only the rules that read what changed
    (one indexed lookup, whatever the number of rules)."""

    rule = models.ForeignKey(GroupRule, on_delete=models.CASCADE, related_name="attribute_rows")
    attribute = models.CharField(max_length=120)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["attribute", "rule"], name="directory_rule_attribute_unique")]

    def __str__(self) -> str:
        return f"{self.rule_id} reads {self.attribute}"


class ExceptionKind(models.TextChoices):
    INCLUDE = "include", "Always a member"
    EXCLUDE = "exclude", "Never a member"


class GroupRuleException(models.Model):
    """A user always (include) or never (exclude) a member, whatever the rule says."""

    rule = models.ForeignKey(GroupRule, on_delete=models.CASCADE, related_name="exceptions")
    user = models.ForeignKey("directory.User", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=7, choices=ExceptionKind.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "user"], name="directory_rule_exception_unique")]
        indexes = [models.Index(fields=["user", "rule"], name="directory_rule_exception_user")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}d in {self.rule_id}"
