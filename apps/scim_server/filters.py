"""SCIM filters (RFC 7644 §3.4.2.2): a bounded parser, a translation into Django Q objects, and an
evaluator for PATCH value filters such as `members[value eq "..."]`.

scim2-filter-parser recurses once per nesting level and crashes on deep input; this parser refuses
input over SCIM_MAX_FILTER_LENGTH characters or SCIM_MAX_FILTER_DEPTH levels of parentheses,
brackets or `not` before any recursion can grow, and reads `and`/`or` chains in loops.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils.dateparse import parse_datetime

from apps.scim_server.errors import ScimError, invalid_filter

COMPARISON_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
MAX_TERMS = 200

# --- Syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttrPath:
    """`[urn:]attr[.sub]`, names lower-cased; `uri` is the schema URN when one was given."""

    uri: str | None
    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        text = f"{self.attr}.{self.sub}" if self.sub else self.attr
        return f"{self.uri}:{text}" if self.uri else text


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Any


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    terms: tuple


@dataclass(frozen=True)
class Or:
    terms: tuple


@dataclass(frozen=True)
class Not:
    term: Any


@dataclass(frozen=True)
class ValuePath:
    """`attr[filter]`: the filter applies to the sub-attributes of one value of `attr`."""

    path: AttrPath
    filter: Any


Node = Compare | Present | And | Or | Not | ValuePath

# --- Tokens ------------------------------------------------------------------------------------

_PUNCTUATION = "()[]"
_WORD_END = set(' \t\r\n()[]"')


@dataclass(frozen=True)
class Token:
    kind: str  # "punct", "string", "word"
    text: str
    value: Any = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char in " \t\r\n":
            index += 1
        elif char in _PUNCTUATION:
            tokens.append(Token("punct", char))
            index += 1
        elif char == '"':
            end = index + 1
            while end < length and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= length:
                raise invalid_filter("Unterminated string in filter.")
            raw = text[index : end + 1]
            try:
                value = json.loads(raw)
            except ValueError:
                raise invalid_filter(f"Invalid string {raw[:40]} in filter.") from None
            tokens.append(Token("string", raw, value))
            index = end + 1
        else:
            end = index
            while end < length and text[end] not in _WORD_END:
                end += 1
            tokens.append(Token("word", text[index:end]))
            index = end
    return tokens


# --- Attribute paths ---------------------------------------------------------------------------


def parse_attr_path(text: str, known_uris: tuple[str, ...]) -> AttrPath:
    """Split `urn:...:User:name.givenName` into its schema URN, attribute and sub-attribute."""
    uri = None
    lowered = text.lower()
    for candidate in sorted(known_uris, key=len, reverse=True):
        if lowered.startswith(candidate.lower() + ":"):
            uri, text = candidate, text[len(candidate) + 1 :]
            break
    if uri is None and lowered.startswith("urn:"):
        raise invalid_filter(f"Unknown schema in attribute path {text[:80]!r}.")
    parts = text.split(".")
    if len(parts) > 2 or not all(_is_attr_name(part) for part in parts):
        raise invalid_filter(f"Invalid attribute path {text[:80]!r}.")
    return AttrPath(uri, parts[0].lower(), parts[1].lower() if len(parts) == 2 else None)


def _is_attr_name(name: str) -> bool:
    if not name:
        return False
    if name == "$ref":
        return True
    return name[0].isascii() and name[0].isalpha() and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


# --- Parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[Token], known_uris: tuple[str, ...], max_depth: int) -> None:
        self.tokens = tokens
        self.position = 0
        self.known_uris = known_uris
        self.max_depth = max_depth
        self.terms = 0

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise invalid_filter("Filter ends too early.")
        self.position += 1
        return token

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.text != char:
            raise invalid_filter(f"Expected {char!r} in filter, found {token.text[:40]!r}.")

    def is_word(self, token: Token | None, *words: str) -> bool:
        return token is not None and token.kind == "word" and token.text.lower() in words

    def parse(self) -> Node:
        node = self.parse_or(0, inside_brackets=False)
        if self.peek() is not None:
            raise invalid_filter(f"Unexpected {self.peek().text[:40]!r} in filter.")
        return node

    def parse_or(self, depth: int, *, inside_brackets: bool) -> Node:
        terms = [self.parse_and(depth, inside_brackets=inside_brackets)]
        while self.is_word(self.peek(), "or"):
            self.take()
            terms.append(self.parse_and(depth, inside_brackets=inside_brackets))
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def parse_and(self, depth: int, *, inside_brackets: bool) -> Node:
        terms = [self.parse_unary(depth, inside_brackets=inside_brackets)]
        while self.is_word(self.peek(), "and"):
            self.take()
            terms.append(self.parse_unary(depth, inside_brackets=inside_brackets))
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def _nest(self, depth: int) -> int:
        depth += 1
        if depth > self.max_depth:
            raise invalid_filter(f"Filter nests deeper than {self.max_depth} levels.")
        return depth

    def parse_unary(self, depth: int, *, inside_brackets: bool) -> Node:
        token = self.peek()
        if token is None:
            raise invalid_filter("Filter ends too early.")
        if self.is_word(token, "not"):
            self.take()
            inner_depth = self._nest(depth)
            self.expect_punct("(")
            node = self.parse_or(inner_depth, inside_brackets=inside_brackets)
            self.expect_punct(")")
            return Not(node)
        if token.kind == "punct" and token.text == "(":
            self.take()
            node = self.parse_or(self._nest(depth), inside_brackets=inside_brackets)
            self.expect_punct(")")
            return node
        return self.parse_attribute_expression(depth, inside_brackets=inside_brackets)

    def parse_attribute_expression(self, depth: int, *, inside_brackets: bool) -> Node:
        token = self.take()
        if token.kind != "word" or token.text.lower() in ("and", "or", "not"):
            raise invalid_filter(f"Expected an attribute name in filter, found {token.text[:40]!r}.")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise invalid_filter(f"Filter has more than {MAX_TERMS} comparisons.")
        path = parse_attr_path(token.text, self.known_uris)
        following = self.peek()
        if following is not None and following.kind == "punct" and following.text == "[":
            if inside_brackets:
                raise invalid_filter("Value filters cannot be nested.")
            if path.sub is not None:
                raise invalid_filter(f"Invalid value filter on {token.text[:80]!r}.")
            self.take()
            inner = self.parse_or(self._nest(depth), inside_brackets=True)
            self.expect_punct("]")
            return ValuePath(path, inner)
        operator = self.take()
        op = operator.text.lower()
        if operator.kind != "word" or (op != "pr" and op not in COMPARISON_OPERATORS):
            raise invalid_filter(f"Unknown operator {operator.text[:40]!r} in filter.")
        if op == "pr":
            return Present(path)
        return Compare(path, op, self.parse_value())

    def parse_value(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.value
        if token.kind == "word":
            word = token.text.lower()
            if word in ("true", "false"):
                return word == "true"
            if word == "null":
                return None
            try:
                return json.loads(token.text)
            except ValueError:
                pass
        raise invalid_filter(f"Invalid comparison value {token.text[:40]!r} in filter.")


def parse_filter(text: str, known_uris: tuple[str, ...] = ()) -> Node:
    """Parse a filter, refusing oversized or overly nested input with 400 invalidFilter."""
    max_length = settings.SCIM_MAX_FILTER_LENGTH
    if len(text) > max_length:
        raise invalid_filter(f"Filter is longer than {max_length} characters.")
    if not text.strip():
        raise invalid_filter("Empty filter.")
    if "\x00" in text:
        raise invalid_filter("Filters cannot contain NUL characters.")
    max_depth = settings.SCIM_MAX_FILTER_DEPTH
    # A cheap pre-check: deep nesting is refused before the parser sees it.
    level = deepest = 0
    for char in text:
        if char in "([":
            level += 1
            deepest = max(deepest, level)
        elif char in ")]":
            level -= 1
    if deepest > max_depth + 1:
        raise invalid_filter(f"Filter nests deeper than {max_depth} levels.")
    return _Parser(tokenize(text), known_uris, max_depth).parse()


def parse_value_filter(text: str, known_uris: tuple[str, ...] = ()) -> Node:
    """The filter inside a PATCH path's brackets."""
    max_depth = settings.SCIM_MAX_FILTER_DEPTH
    if len(text) > settings.SCIM_MAX_FILTER_LENGTH:
        raise invalid_filter("Value filter is too long.")
    parser = _Parser(tokenize(text), known_uris, max_depth)
    node = parser.parse_or(1, inside_brackets=True)
    if parser.peek() is not None:
        raise invalid_filter(f"Unexpected {parser.peek().text[:40]!r} in value filter.")
    return node


# --- Translation into Q objects ----------------------------------------------------------------


class FilterContext:
    """Collects the Lower() aliases the Q objects refer to, to be applied to the queryset."""

    def __init__(self) -> None:
        self.aliases: dict[str, Lower] = {}

    def lower(self, field: str) -> str:
        name = f"scim_lc_{field}"
        self.aliases[name] = Lower(field)
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


def text_ci(field: str) -> Translator:
    """A case-insensitive text attribute; `eq` compares lower(field), which an index can serve."""

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return ~Q(**{field: ""})
        if value is None:
            if op in ("eq", "ne"):
                present = ~Q(**{field: ""})
                return ~present if op == "eq" else present
            raise invalid_filter(f"Operator {op} cannot compare with null.")
        value = _require_string(op, value)
        lowered = context.lower(field)
        if op == "eq":
            return Q(**{lowered: value.lower()})
        if op == "ne":
            return ~Q(**{lowered: value.lower()})
        if op in ("co", "sw", "ew"):
            lookup = {"co": "contains", "sw": "startswith", "ew": "endswith"}[op]
            return Q(**{f"{lowered}__{lookup}": value.lower()})
        return Q(**{f"{lowered}__{_ORDERING_LOOKUPS[op]}": value.lower()})

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
        return to_q(node.filter, target, context, node.path)
    path = node.path
    if prefix is not None:
        if path.sub is not None or path.uri is not None:
            raise invalid_filter(f"Invalid attribute {path} inside a value filter.")
        path = AttrPath(prefix.uri, prefix.attr, path.attr)
    translator = target.translators.get(target.resolve(path))
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


# --- Evaluation against one value, for PATCH paths ---------------------------------------------


def value_matches(node: Node, element: dict, case_exact: Callable[[str], bool]) -> bool:
    """Does a complex value (`{"value": ..., "type": ...}`) match a value filter?"""
    if isinstance(node, Or):
        return any(value_matches(term, element, case_exact) for term in node.terms)
    if isinstance(node, And):
        return all(value_matches(term, element, case_exact) for term in node.terms)
    if isinstance(node, Not):
        return not value_matches(node.term, element, case_exact)
    if isinstance(node, ValuePath):
        raise invalid_filter("Value filters cannot be nested.")
    if node.path.sub is not None or node.path.uri is not None:
        raise invalid_filter(f"Invalid attribute {node.path} inside a value filter.")
    name = node.path.attr
    actual = next((value for key, value in element.items() if key.lower() == name), None)
    if isinstance(node, Present):
        return actual not in (None, "", [], {})
    return _compare(node.op, actual, node.value, case_exact(name))


def _compare(op: str, actual: Any, expected: Any, exact: bool) -> bool:
    if expected is None:
        return (actual is None) == (op == "eq") if op in ("eq", "ne") else False
    if isinstance(expected, bool) or isinstance(actual, bool):
        if isinstance(actual, str) and actual.lower() in ("true", "false"):
            actual = actual.lower() == "true"
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        return False
    if actual is None:
        return op == "ne"
    if isinstance(expected, str):
        actual, expected = str(actual), expected
        if not exact:
            actual, expected = actual.lower(), expected.lower()
    operations = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "co": lambda a, b: isinstance(a, str) and b in a,
        "sw": lambda a, b: isinstance(a, str) and a.startswith(b),
        "ew": lambda a, b: isinstance(a, str) and a.endswith(b),
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
    }
    try:
        return bool(operations[op](actual, expected))
    except TypeError:
        return False
