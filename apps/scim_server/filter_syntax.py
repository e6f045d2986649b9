"""SCIM filter syntax (RFC 7644 §3.4.2.2): a bounded parser into a small syntax tree, and an
evaluator of value filters against one complex value (PATCH paths such as `members[value eq "..."]`).

scim2-filter-parser recurses once per nesting level and crashes on deep input; this parser refuses
input over SCIM_MAX_FILTER_LENGTH characters or SCIM_MAX_FILTER_DEPTH levels of parentheses,
brackets or `not` before any recursion can grow, and reads `and`/`or` chains in loops.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.scim_server.errors import invalid_filter

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
