"""The rule editor: how conditions combine, one row per condition, the exception lists, and the
confirmation a mass removal needs."""

from typing import Any

from django import forms

from apps.directory.models import RuleMatch
from apps.directory.rules.conditions import OPERATORS

# Blank rows shown below a rule's conditions, for new ones (blank rows are ignored on save).
BLANK_CONDITION_ROWS = 2
MAX_EXCEPTION_USERS = 1000


class RuleForm(forms.Form):
    match = forms.ChoiceField(
        label="Members are the users who match", choices=RuleMatch.choices, widget=forms.RadioSelect, initial="all"
    )
    include = forms.CharField(
        label="Always members",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Usernames or emails, one a line (or separated by commas): members whatever the rule says.",
    )
    exclude = forms.CharField(
        label="Never members",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Usernames or emails: never members, whatever the rule says.",
    )
    confirm_removals = forms.BooleanField(label="Yes, remove these members", required=False)


def identities(text: str) -> list[str]:
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()][:MAX_EXCEPTION_USERS]


class ConditionForm(forms.Form):
    attribute = forms.ChoiceField(label="Attribute", required=False)
    op = forms.ChoiceField(
        label="Operator",
        required=False,
        choices=[("", "—")] + [(op, f"{op} ({label})") for op, label in OPERATORS.items()],
    )
    value = forms.CharField(
        label="Value", required=False, max_length=2000, help_text="For “in”, separate the values with commas."
    )

    def __init__(self, *args: Any, attribute_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["attribute"].choices = [("", "—"), *attribute_choices]

    def condition(self) -> dict[str, Any] | None:
        """The condition as the directory reads it, or None for a blank row."""
        data = self.cleaned_data
        if not data.get("attribute") and not data.get("op") and not data.get("value"):
            return None
        document: dict[str, Any] = {"attribute": data.get("attribute") or "", "op": data.get("op") or ""}
        value = data.get("value", "")
        if document["op"] == "in":
            document["value"] = [item.strip() for item in value.split(",") if item.strip()]
        elif document["op"] != "pr":
            document["value"] = value
        return document


class BaseConditionFormSet(forms.BaseFormSet):
    title = "Conditions"

    def conditions(self) -> list[dict[str, Any]]:
        return [row for row in (form.condition() for form in self.forms if form.is_valid()) if row is not None]


ConditionFormSet = forms.formset_factory(ConditionForm, formset=BaseConditionFormSet, extra=0, max_num=60)


def condition_initial(conditions: list[dict]) -> list[dict[str, Any]]:
    rows = []
    for condition in conditions:
        value = condition.get("value", "")
        rows.append(
            {
                "attribute": condition.get("attribute", ""),
                "op": condition.get("op", ""),
                "value": ", ".join(str(item) for item in value)
                if isinstance(value, list)
                else str(value if value is not None else ""),
            }
        )
    return rows + [{} for _ in range(BLANK_CONDITION_ROWS)]
