"""What a rule may test, read from the directory's attribute registry (apps.directory.attributes):
each attribute's key, type, how SQL reaches it and how Python reads it.

One lookup (`rule_attributes`) serves the validator, the SQL compiler, the Python evaluator and the
console's attribute picker, so they cannot disagree about an attribute. Attributes a rule cannot
test are left out: complex lists (addresses, photos) and the manager's derived keys, whose values
change with another user's row and so are not re-evaluated on this user's change.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Q

from apps.directory.attributes import CUSTOM_PREFIX, ProfileAttribute, all_attributes, user_value
from apps.directory.attributes import AttributeType as ProfileType
from apps.directory.models import User


class AttributeType:
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    BOOLEAN = "boolean"
    ENUM = "enum"
    REFERENCE = "reference"  # another user's id (manager)


@dataclass(frozen=True)
class RuleAttribute:
    name: str  # the registry key: "department", "custom.cost_band"
    label: str
    type: str
    # ORM path from User for the compiled Q ("department", "manager").
    lookup: str
    # The user's value(s) for the Python evaluation: a scalar, None, or a list when multi-valued.
    read: Callable[[User], Any]
    choices: tuple[str, ...] = ()
    multi_valued: bool = False
    # Compared without regard to case (SCIM's caseExact false), as the SQL side does with iexact.
    case_insensitive: bool = True
    # (op, value) -> Q, where the attribute is not a plain column (custom attributes in JSON).
    compile_q: Callable[[str, Any], Q] | None = None


_TYPES = {
    ProfileType.STRING: AttributeType.STRING,
    ProfileType.NUMBER: AttributeType.NUMBER,
    ProfileType.DATE: AttributeType.DATE,
    ProfileType.BOOLEAN: AttributeType.BOOLEAN,
    ProfileType.ENUM: AttributeType.ENUM,
}
# URLs compare as text; the manager is a user id.
_REFERENCE_AS_TEXT = {"profile_url"}


def _json_scalar(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _custom_q(name: str, type_: str, multi_valued: bool) -> Callable[[str, Any], Q]:
    """Conditions on `custom_attributes -> name` (a JSON dict on the user)."""
    path = f"custom_attributes__{name}"
    # A user without the attribute does not equal any value (`ne` holds), as in the Python evaluation.
    missing = Q(**{f"{path}__isnull": True})

    def compile_q(op: str, value: Any) -> Q:
        if op == "pr":
            present = Q(**{f"{path}__isnull": False})
            return present & ~Q(**{path: ""}) & ~Q(**{path: []}) if type_ == AttributeType.STRING else present
        if multi_valued:
            # The list's JSON text holds `"value"` when any element equals it (PostgreSQL's ->> and
            # SQLite's json_extract both give that text); case folded as for single values.
            def has(item: Any) -> Q:
                return Q(**{f"{path}__icontains": json.dumps(_json_scalar(item), ensure_ascii=False)})

            if op == "in":
                return reduce(or_, (has(item) for item in value))
            return ~has(value) | missing if op == "ne" else has(value)
        text = type_ == AttributeType.STRING
        if op in ("eq", "ne"):
            equals = Q(**{f"{path}__iexact" if text else path: _json_scalar(value)})
            return ~equals | missing if op == "ne" else equals
        if op == "in":
            if text:
                return reduce(or_, (Q(**{f"{path}__iexact": item}) for item in value))
            return reduce(or_, (Q(**{path: _json_scalar(item)}) for item in value))
        lookup = {"co": "icontains", "sw": "istartswith", "ew": "iendswith", "ge": "gte", "le": "lte"}.get(op, op)
        return Q(**{f"{path}__{lookup}": _json_scalar(value)})

    return compile_q


def _from_registry(attribute: ProfileAttribute) -> RuleAttribute | None:
    key = attribute.key
    if attribute.custom:
        type_ = _TYPES.get(attribute.type)
        if type_ is None or (attribute.multi_valued and type_ in (AttributeType.NUMBER, AttributeType.BOOLEAN)):
            return None  # a list of numbers or booleans has no text form to search
        name = key[len(CUSTOM_PREFIX) :]
        return RuleAttribute(
            name=key,
            label=attribute.label,
            type=type_,
            lookup=f"custom_attributes__{name}",
            read=lambda user: user_value(user, key),
            choices=attribute.choices,
            multi_valued=attribute.multi_valued,
            compile_q=_custom_q(name, type_, attribute.multi_valued),
        )
    if attribute.multi_valued or "." in key or key == "id":
        return None
    if key == "manager":
        return RuleAttribute(
            name=key,
            label=attribute.label,
            type=AttributeType.REFERENCE,
            lookup="manager",
            read=lambda user: user_value(user, key),
            case_insensitive=False,
        )
    if attribute.type == ProfileType.REFERENCE and key not in _REFERENCE_AS_TEXT:
        return None
    type_ = _TYPES.get(attribute.type, AttributeType.STRING if attribute.type == ProfileType.REFERENCE else None)
    if type_ is None:
        return None
    return RuleAttribute(
        name=key,
        label=attribute.label,
        type=type_,
        lookup=key,
        read=lambda user: getattr(user, key, None),
        choices=attribute.choices,
        # An enum's values are canonical; text fields compare without case unless SCIM says caseExact.
        case_insensitive=not attribute.case_exact and type_ == AttributeType.STRING,
    )


def rule_attributes(*, custom: bool = True) -> dict[str, RuleAttribute]:
    """Every attribute a rule may test, by key, in the registry's order (one query: the custom ones;
    none with `custom=False`, for rules that read no custom attribute)."""
    found = (_from_registry(attribute) for attribute in all_attributes(custom=custom))
    return {attribute.name: attribute for attribute in found if attribute is not None}
