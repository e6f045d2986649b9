"""What a rule may test: each attribute's name, type and where its value lives.

One lookup (`rule_attributes`) serves the validator, the SQL compiler, the Python evaluator and
the console's attribute picker, so the three cannot disagree about an attribute.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.directory.models import User, UserStatus


class AttributeType:
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    BOOLEAN = "boolean"
    ENUM = "enum"


@dataclass(frozen=True)
class RuleAttribute:
    name: str  # as rules and change announcements name it: "department", "custom.cost_band"
    label: str
    type: str
    # ORM path from User for the compiled Q ("department", "custom_attributes__x").
    lookup: str
    # The user's value(s) for the Python evaluation: a scalar, None, or a list when multi-valued.
    read: Callable[[User], Any]
    choices: tuple[str, ...] = ()
    multi_valued: bool = False
    nullable: bool = False
    # Compared without regard to case (SCIM's caseExact false), as the SQL side does with iexact.
    case_insensitive: bool = True
    extra: dict = field(default_factory=dict)


def _field(name: str, label: str, type_: str = AttributeType.STRING, **kwargs: Any) -> RuleAttribute:
    return RuleAttribute(
        name=name, label=label, type=type_, lookup=name, read=lambda user: getattr(user, name), **kwargs
    )


_CORE_ATTRIBUTES = (
    _field("username", "Username"),
    _field("email", "Email"),
    _field("first_name", "First name"),
    _field("last_name", "Last name"),
    _field("display_name", "Display name"),
    _field("employee_id", "Employee ID"),
    _field("status", "Status", AttributeType.ENUM, choices=tuple(UserStatus.values), case_insensitive=False),
)


def rule_attributes() -> dict[str, RuleAttribute]:
    """Every attribute a rule may test, by name, in the order the console lists them."""
    return {attribute.name: attribute for attribute in _CORE_ATTRIBUTES}
