"""SCIM filters as database queries: a parsed filter (apps.scim_server.filter_syntax) translated
into Django Q objects, attribute by attribute, through the translators a resource type declares.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Func, Q, QuerySet
from django.db.models.functions import Lower, Upper
from django.utils.dateparse import parse_datetime

from apps.scim_server.errors import ScimError, invalid_filter
from apps.scim_server.filter_syntax import (
    And,
    AttrPath,
    Node,
    Not,
    Or,
    Present,
    ValuePath,
    parse_attr_path,
    parse_filter,
)

# --- Translation into Q objects ----------------------------------------------------------------


class FilterContext:
    """Collects the expressions (Lower(), Upper(), EXISTS over JSON lists) the Q objects refer to
    by alias, to be applied to the queryset."""

    def __init__(self) -> None:
        self.aliases: dict[str, Any] = {}
        self.vendor = connection.vendor

    def lower(self, field: str, fold: type[Func] = Lower) -> str:
        name = f"scim_{fold.function.lower()}_{field.replace('__', '_')}"
        self.aliases[name] = fold(field)
        return name

    def expression(self, expression: Any) -> str:
        name = f"scim_x{len(self.aliases)}"
        self.aliases[name] = expression
        return name

    def apply(self, queryset: QuerySet, q: Q) -> QuerySet:
        if self.aliases:
            queryset = queryset.alias(**self.aliases)
        return queryset.filter(q)


NOTHING = Q(pk__in=[])
_ORDERING_LOOKUPS = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
Translator = Callable[[str, Any, FilterContext], Q]


def _require_string(op: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid_filter(f"Operator {op} needs a string value here.")
    return value


def text_ci(field: str, fold: type[Func] = Lower) -> Translator:
    """A case-insensitive text attribute; `eq` compares lower(field) (or upper(field)), which an
    expression index can serve: `fold` is the one the column's index was built with."""
    convert = str.upper if fold is Upper else str.lower

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return ~Q(**{field: ""})
        if value is None:
            if op in ("eq", "ne"):
                present = ~Q(**{field: ""})
                return ~present if op == "eq" else present
            raise invalid_filter(f"Operator {op} cannot compare with null.")
        value = convert(_require_string(op, value))
        lowered = context.lower(field, fold)
        if op == "eq":
            return Q(**{lowered: value})
        if op == "ne":
            return ~Q(**{lowered: value})
        if op in ("co", "sw", "ew"):
            lookup = {"co": "contains", "sw": "startswith", "ew": "endswith"}[op]
            return Q(**{f"{lowered}__{lookup}": value})
        return Q(**{f"{lowered}__{_ORDERING_LOOKUPS[op]}": value})

    return translate


def text_exact(field: str) -> Translator:
    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return ~Q(**{field: ""})
        if value is None:
            if op in ("eq", "ne"):
                present = ~Q(**{field: ""})
                return ~present if op == "eq" else present
            raise invalid_filter(f"Operator {op} cannot compare with null.")
        value = _require_string(op, value)
        lookups = {"eq": "exact", "ne": "exact", "co": "contains", "sw": "startswith", "ew": "endswith"}
        lookups.update({"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"})
        q = Q(**{f"{field}__{lookups[op]}": value})
        return ~q if op == "ne" else q

    return translate


def uuid_field(field: str) -> Translator:
    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return ~Q(**{f"{field}__isnull": True})
        if op not in ("eq", "ne"):
            raise invalid_filter(f"Operator {op} is not supported on identifiers; use eq, ne or pr.")
        value = _require_string(op, value) if value is not None else ""
        try:
            q = Q(**{field: UUID(value)})
        except ValueError:
            q = NOTHING
        return ~q if op == "ne" else q

    return translate


def in_subquery(field: str, subquery_for: Callable[[UUID], QuerySet]) -> Translator:
    """Membership-style attributes (`members.value`, `groups.value`): eq/ne/pr on an id."""

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return Q(**{f"{field}__in": subquery_for(None)})
        if op not in ("eq", "ne"):
            raise invalid_filter(f"Operator {op} is not supported here; use eq, ne or pr.")
        value = _require_string(op, value) if value is not None else ""
        try:
            q = Q(**{f"{field}__in": subquery_for(UUID(value))})
        except ValueError:
            q = NOTHING
        return ~q if op == "ne" else q

    return translate


def datetime_field(field: str) -> Translator:
    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return ~Q(**{f"{field}__isnull": True})
        if op not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise invalid_filter(f"Operator {op} is not supported on dates.")
        moment = _parse_moment(value)
        lookup = {"eq": "exact", "ne": "exact", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}[op]
        q = Q(**{f"{field}__{lookup}": moment})
        return ~q if op == "ne" else q

    return translate


def _parse_moment(value: Any) -> datetime:
    try:
        moment = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well-formed but impossible, such as month 13
        moment = None
    if moment is None:
        raise invalid_filter('Compare dates with an ISO 8601 date-time such as "2026-01-31T12:00:00Z".')
    return moment


def boolean_q(true_q: Q) -> Translator:
    """A boolean attribute whose `true` is `true_q`."""

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return Q()
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if op not in ("eq", "ne") or not isinstance(value, bool):
            raise invalid_filter("Booleans compare only with eq or ne and true or false.")
        wanted = value if op == "eq" else not value
        return true_q if wanted else ~true_q

    return translate


def constant_when_present(presence: Q, constant: Any) -> Translator:
    """A sub-attribute with one possible value while its parent is present (emails.type = work)."""

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return presence
        if isinstance(constant, bool) and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if op == "eq":
            matches = value == constant or (isinstance(value, str) and str(constant).lower() == value.lower())
            return presence if matches else NOTHING
        if op == "ne":
            matches = value == constant or (isinstance(value, str) and str(constant).lower() == value.lower())
            return ~presence if matches else Q()
        if isinstance(constant, str) and isinstance(value, str) and op in ("co", "sw", "ew"):
            check = {"co": constant.lower().__contains__, "sw": constant.lower().startswith}
            check["ew"] = constant.lower().endswith
            return presence if check[op](value.lower()) else NOTHING
        raise invalid_filter(f"Operator {op} is not supported here.")

    return translate


@dataclass(frozen=True)
class FilterTarget:
    """What a resource type allows to filter on: (attr, sub) -> translator, and sortable fields."""

    translators: dict[tuple[str, str | None], Translator]
    known_uris: tuple[str, ...]
    core_uri: str
    sortable: dict[tuple[str, str | None], str]
    # Attributes known only at request time (custom ones): (attr, sub) -> translator or None.
    fallback: Callable[[tuple[str, str | None]], Translator | None] = lambda key: None
    # Multi-valued attributes whose value filter (`attr[...]`) must hold for one and the same value:
    # attr -> a function of the filter inside the brackets.
    value_paths: dict[str, Callable[[Node, "FilterContext"], Q]] = field(default_factory=dict)

    def translator(self, key: tuple[str, str | None]) -> Translator | None:
        return self.translators.get(key) or self.fallback(key)

    def resolve(self, path: AttrPath) -> tuple[str, str | None]:
        key = (path.attr, path.sub)
        if path.uri and path.uri != self.core_uri:
            key = (f"{path.uri.lower()}:{path.attr}", path.sub)
        return key


def to_q(node: Node, target: FilterTarget, context: FilterContext, prefix: AttrPath | None = None) -> Q:
    """Translate a parsed filter into a Q object, refusing attributes that cannot be filtered."""
    # The tree is at most SCIM_MAX_FILTER_DEPTH deep, so recursing over it is bounded.
    if isinstance(node, Or):
        q = Q()
        for index, term in enumerate(node.terms):
            part = to_q(term, target, context, prefix)
            q = part if index == 0 else q | part
        return q
    if isinstance(node, And):
        q = Q()
        for term in node.terms:
            q &= to_q(term, target, context, prefix)
        return q
    if isinstance(node, Not):
        return ~to_q(node.term, target, context, prefix)
    if isinstance(node, ValuePath):
        handler = target.value_paths.get(node.path.attr) if node.path.uri in (None, target.core_uri) else None
        if handler is not None:
            return handler(node.filter, context)
        return to_q(node.filter, target, context, node.path)
    path = node.path
    if prefix is not None:
        if path.sub is not None or path.uri is not None:
            raise invalid_filter(f"Invalid attribute {path} inside a value filter.")
        path = AttrPath(prefix.uri, prefix.attr, path.attr)
    translator = target.translator(target.resolve(path))
    if translator is None:
        raise invalid_filter(f"Cannot filter on {path}: unknown attribute or not filterable.")
    if isinstance(node, Present):
        return translator("pr", None, context)
    return translator(node.op, node.value, context)


def filter_queryset(queryset: QuerySet, text: str, target: FilterTarget) -> QuerySet:
    node = parse_filter(text, target.known_uris)
    context = FilterContext()
    return context.apply(queryset, to_q(node, target, context))


def sort_field(sort_by: str, target: FilterTarget) -> str:
    try:
        path = parse_attr_path(sort_by, target.known_uris)
    except ScimError:
        raise ScimError(400, f"Cannot sort by {sort_by[:80]!r}.", "invalidValue") from None
    field = target.sortable.get(target.resolve(path))
    if field is None:
        raise ScimError(400, f"Cannot sort by {sort_by[:80]!r}.", "invalidValue")
    return field
