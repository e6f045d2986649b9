"""A rule: all or any of conditions `attribute op value`, validated once, then compiled to a Q (for
set-wise SQL) or evaluated in Python against one user's values (for a single user's change).

Both sides follow SCIM's filter semantics (RFC 7644 §3.4.2.2): strings compare without regard to
case unless the attribute says otherwise, `pr` means present and not empty, and a multi-valued
attribute matches when any of its values does (`ne`: when none equals).
"""

import datetime
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import reduce
from operator import and_, or_
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q

from apps.directory.models import RuleMatch, User
from apps.directory.rules.attributes import AttributeType, RuleAttribute, rule_attributes

OPERATORS = {
    "eq": "equals",
    "ne": "does not equal",
    "co": "contains",
    "sw": "starts with",
    "ew": "ends with",
    "in": "is one of",
    "pr": "is present",
    "gt": "is greater than",
    "ge": "is at least",
    "lt": "is less than",
    "le": "is at most",
}
_ORDERED = ("eq", "ne", "gt", "ge", "lt", "le", "in", "pr")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    AttributeType.STRING: ("eq", "ne", "co", "sw", "ew", "in", "pr"),
    AttributeType.ENUM: ("eq", "ne", "in", "pr"),
    AttributeType.NUMBER: _ORDERED,
    AttributeType.DATE: _ORDERED,
    AttributeType.BOOLEAN: ("eq", "ne", "pr"),
    AttributeType.REFERENCE: ("eq", "ne", "in", "pr"),
}
# A multi-valued attribute matches when any value does; ordering and substrings do not apply.
MULTI_VALUED_OPERATORS = ("eq", "ne", "in", "pr")
MAX_CONDITIONS = 50
MAX_IN_VALUES = 200
MAX_STRING_LENGTH = 255


@dataclass(frozen=True)
class Condition:
    attribute: RuleAttribute
    op: str
    value: Any  # normalised: str, Decimal, date, bool, a tuple of those for `in`, None for `pr`
    # The value as the Python evaluation compares it (case folded...; a frozenset for `in`).
    wanted: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.op == "in":
            wanted = frozenset(_comparable(self.attribute, item) for item in self.value)
        elif self.op == "pr":
            wanted = None
        else:
            wanted = _comparable(self.attribute, self.value)
        object.__setattr__(self, "wanted", wanted)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"attribute": self.attribute.name, "op": self.op}
        if self.op != "pr":
            document["value"] = _json_value(self.value)
        return document

    def describe(self) -> str:
        if self.op == "pr":
            return f"{self.attribute.name} pr"
        return f"{self.attribute.name} {self.op} {json.dumps(_json_value(self.value))}"


@dataclass(frozen=True)
class Rule:
    match: str
    conditions: tuple[Condition, ...]

    @property
    def attribute_names(self) -> set[str]:
        return {condition.attribute.name for condition in self.conditions}

    def conditions_json(self) -> list[dict[str, Any]]:
        return [condition.to_json() for condition in self.conditions]

    def describe(self) -> str:
        joiner = " and " if self.match == RuleMatch.ALL else " or "
        return joiner.join(condition.describe() for condition in self.conditions)

    def to_q(self) -> Q:
        parts = [_condition_q(condition) for condition in self.conditions]
        return reduce(and_ if self.match == RuleMatch.ALL else or_, parts)

    def matches(self, user: User, values: dict[str, list] | None = None) -> bool:
        """`values`: the user's comparable values by attribute, filled as read; pass one dict to
        every rule evaluated for the same user, so each attribute is read and normalised once."""
        values = {} if values is None else values
        results = (_condition_holds(condition, user, values) for condition in self.conditions)
        return all(results) if self.match == RuleMatch.ALL else any(results)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


# --- Parsing and validation -------------------------------------------------------------------


def parse_rule(match: Any, conditions: Any, *, attributes: dict[str, RuleAttribute] | None = None) -> Rule:
    """A validated Rule, or a ValidationError naming each bad condition by its position."""
    attributes = attributes if attributes is not None else rule_attributes()
    errors: dict[str, list[str]] = {}
    if match not in RuleMatch.values:
        errors["match"] = [f"Choose how conditions combine: {' or '.join(RuleMatch.values)}."]
    if not isinstance(conditions, list) or not conditions:
        errors.setdefault("conditions", []).append("A rule needs at least one condition.")
        raise ValidationError(errors)
    if len(conditions) > MAX_CONDITIONS:
        errors.setdefault("conditions", []).append(f"A rule may have at most {MAX_CONDITIONS} conditions.")
        raise ValidationError(errors)
    parsed = []
    for position, document in enumerate(conditions, start=1):
        try:
            parsed.append(parse_condition(document, attributes))
        except ValueError as exc:
            errors.setdefault("conditions", []).append(f"Condition {position}: {exc}")
    if errors:
        raise ValidationError(errors)
    return Rule(match=match, conditions=tuple(parsed))


def parse_condition(document: Any, attributes: dict[str, RuleAttribute]) -> Condition:
    """One condition from {"attribute", "op", "value"}; ValueError says what is wrong with it."""
    if not isinstance(document, dict):
        raise ValueError('write each condition as {"attribute": ..., "op": ..., "value": ...}.')
    unknown_keys = set(document) - {"attribute", "op", "value"}
    if unknown_keys:
        raise ValueError(f"unknown key {sorted(unknown_keys)[0]!r}.")
    name = document.get("attribute")
    attribute = attributes.get(name) if isinstance(name, str) else None
    if attribute is None and isinstance(name, str) and name.lower().startswith("custom."):
        # Custom attribute names are unique without regard to case.
        attribute = next((found for key, found in attributes.items() if key.lower() == name.lower()), None)
    if attribute is None:
        raise ValueError(f"unknown attribute {str(name)[:80]!r}; choose one of {', '.join(attributes)}.")
    op = document.get("op")
    allowed = OPERATORS_BY_TYPE[attribute.type]
    if attribute.multi_valued:
        allowed = tuple(op for op in allowed if op in MULTI_VALUED_OPERATORS)
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {str(op)[:20]!r}; use one of {', '.join(allowed)}.")
    if op not in allowed:
        raise ValueError(
            f"{op} ({OPERATORS[op]}) does not apply to {attribute.name}, "
            f"{'a list of ' if attribute.multi_valued else 'a '}{attribute.type}; "
            f"use one of {', '.join(allowed)}."
        )
    if op == "pr":
        if document.get("value") not in (None, ""):
            raise ValueError("pr (is present) takes no value.")
        return Condition(attribute, op, None)
    if "value" not in document:
        raise ValueError(f"{attribute.name} {op} needs a value.")
    raw = document["value"]
    if op == "in":
        if not isinstance(raw, list) or not raw:
            raise ValueError("in needs a list of values.")
        if len(raw) > MAX_IN_VALUES:
            raise ValueError(f"in takes at most {MAX_IN_VALUES} values.")
        return Condition(attribute, op, tuple(dict.fromkeys(_typed_value(attribute, item) for item in raw)))
    return Condition(attribute, op, _typed_value(attribute, raw))


def _typed_value(attribute: RuleAttribute, raw: Any) -> Any:
    kind = attribute.type
    if kind in (AttributeType.STRING, AttributeType.ENUM):
        if not isinstance(raw, str):
            raise ValueError(f"{attribute.name} is text: give its value as a string.")
        if len(raw) > MAX_STRING_LENGTH:
            raise ValueError(f"a value has at most {MAX_STRING_LENGTH} characters.")
        if kind == AttributeType.ENUM and raw not in attribute.choices:
            raise ValueError(f"{raw[:80]!r} is not a {attribute.name}; choose one of {', '.join(attribute.choices)}.")
        return raw
    if kind == AttributeType.NUMBER:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"{attribute.name} is a number: give a number.")
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            raise ValueError(f"{str(raw)[:40]!r} is not a number.") from None
        if not number.is_finite():
            raise ValueError(f"{str(raw)[:40]!r} is not a number.")
        return number
    if kind == AttributeType.DATE:
        problem = f"{attribute.name} is a date: write it as YYYY-MM-DD, not {str(raw)[:40]!r}."
        if not isinstance(raw, str):
            raise ValueError(problem)
        try:
            return datetime.date.fromisoformat(raw)
        except ValueError:
            raise ValueError(problem) from None
    if kind == AttributeType.REFERENCE:
        try:
            return str(uuid.UUID(str(raw)))
        except ValueError:
            raise ValueError(f"{attribute.name} is a user: give the user's id, not {str(raw)[:40]!r}.") from None
    if kind == AttributeType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"{attribute.name} is true or false.")
    raise ValueError(f"{attribute.name} cannot be tested.")


# --- SQL: a Q over User ------------------------------------------------------------------------


def _condition_q(condition: Condition) -> Q:
    attribute, op, value = condition.attribute, condition.op, condition.value
    if attribute.compile_q is not None:  # stored in JSON (custom attributes): the attribute says how
        return attribute.compile_q(op, value)
    path = attribute.lookup
    if op == "pr":
        present = Q(**{f"{path}__isnull": False})
        return present & ~Q(**{path: ""}) if attribute.type == AttributeType.STRING else present
    if op == "ne":
        return ~_equals_q(attribute, value)
    if op == "eq":
        return _equals_q(attribute, value)
    if op == "in":
        if _folds_case(attribute):
            return reduce(or_, (Q(**{f"{path}__iexact": item}) for item in value))
        return Q(**{f"{path}__in": list(value)})
    lookups = {"co": "icontains", "sw": "istartswith", "ew": "iendswith"}
    if op in lookups:
        lookup = lookups[op] if attribute.case_insensitive else lookups[op][1:]
        return Q(**{f"{path}__{lookup}": value})
    return Q(**{f"{path}__{'gte' if op == 'ge' else 'lte' if op == 'le' else op}": value})


def _folds_case(attribute: RuleAttribute) -> bool:
    return attribute.case_insensitive and attribute.type == AttributeType.STRING


def _equals_q(attribute: RuleAttribute, value: Any) -> Q:
    if _folds_case(attribute):
        return Q(**{f"{attribute.lookup}__iexact": value})
    return Q(**{attribute.lookup: value})


# --- Python: one user's values -----------------------------------------------------------------


def _values_of(attribute: RuleAttribute, user: User) -> list[Any]:
    value = attribute.read(user)
    values = list(value) if attribute.multi_valued and value is not None else [value]
    return [item for item in values if item is not None]


def _comparable(attribute: RuleAttribute, value: Any) -> Any:
    if attribute.type == AttributeType.NUMBER:
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if attribute.type == AttributeType.DATE:
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, str):
            try:
                return datetime.date.fromisoformat(value)
            except ValueError:
                return None
    if attribute.type == AttributeType.REFERENCE:
        return str(value)
    if attribute.type == AttributeType.STRING and attribute.case_insensitive:
        return str(value).lower()
    return value


def _user_values(attribute: RuleAttribute, user: User, memo: dict[str, list]) -> list[Any]:
    values = memo.get(attribute.name)
    if values is None:
        values = [_comparable(attribute, item) for item in _values_of(attribute, user)]
        values = memo[attribute.name] = [item for item in values if item is not None and item != ""]
    return values


def _condition_holds(condition: Condition, user: User, memo: dict[str, list]) -> bool:
    values = _user_values(condition.attribute, user, memo)
    op, wanted = condition.op, condition.wanted
    if op == "pr":
        return bool(values)
    if op == "eq":
        return wanted in values
    if op == "ne":
        return wanted not in values
    if op == "in":
        return any(value in wanted for value in values)
    if op == "co":
        return any(wanted in value for value in values)
    if op == "sw":
        return any(value.startswith(wanted) for value in values)
    if op == "ew":
        return any(value.endswith(wanted) for value in values)
    compare = _ORDERINGS[op]
    try:
        return any(compare(value, wanted) for value in values)
    except TypeError:
        return False


_ORDERINGS = {
    "gt": lambda value, wanted: value > wanted,
    "ge": lambda value, wanted: value >= wanted,
    "lt": lambda value, wanted: value < wanted,
    "le": lambda value, wanted: value <= wanted,
}
