"""Filters on the profile attributes kept as JSON on the user row: multi-valued lists
(`phoneNumbers.value`, `emails.value`, `addresses.locality`...) and custom attributes.

On PostgreSQL, `eq` on a GIN-indexed column (`emails`, `phone_numbers`, `custom_attributes`, with
jsonb_path_ops) is JSON containment (`@>`), which the index serves. Every other comparison is an
EXISTS over the list's elements (json_each / jsonb_array_elements): a scan, as SCIM's `co` or `gt`
would be on any column.
"""

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import BooleanField, F, Func, Q

from apps.directory.models import CustomAttribute, CustomAttributeType
from apps.directory.profile_selectors import list_value_q
from apps.scim_server.errors import invalid_filter
from apps.scim_server.filter_syntax import And, Node, Not, Or, Present, ValuePath
from apps.scim_server.filters import FilterContext, Translator

_TEXT_OPERATORS = {"eq": "= %s", "ne": "= %s", "gt": "> %s", "ge": ">= %s", "lt": "< %s", "le": "<= %s"}
_LIKE = {"co": "%{}%", "sw": "{}%", "ew": "%{}"}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class JsonMatch(Func):
    """Whether a JSON column holds a value that compares true.

    `key`: the object key inside each element of a list column (`value`, `locality`), or of the
    column itself when `each` is False (a custom attribute); None: the element itself (a custom
    multi-valued attribute's list of scalars). `kind` is "text", "number" or "boolean".
    """

    output_field = BooleanField()

    def __init__(
        self, column: str, *, op: str, value: Any, each: bool, key: str | None, kind: str = "text", exact: bool = False
    ) -> None:
        super().__init__(F(column))
        self.op, self.value, self.each, self.key, self.kind, self.exact = op, value, each, key, kind, exact

    def _extract(self, base: str, key: str | None, vendor: str) -> tuple[str, list]:
        if vendor == "postgresql":
            return (f"({base} #>> '{{}}')", []) if key is None else (f"({base} ->> %s)", [key])
        return (base, []) if key is None else (f"json_extract({base}, %s)", [f'$."{key}"'])

    def _compare(self, text_sql: str, vendor: str) -> tuple[str, list]:
        if self.op == "pr":
            return f"COALESCE({text_sql}, '') <> ''", []
        if self.kind == "number":
            cast = "numeric" if vendor == "postgresql" else "REAL"
            return f"CAST({text_sql} AS {cast}) {_TEXT_OPERATORS[self.op]}", [self.value]
        if self.kind == "boolean":
            truth = ("'true'", "'false'") if vendor == "postgresql" else ("1", "0")
            return f"{text_sql} = {truth[0] if self.value else truth[1]}", []
        folded = text_sql if self.exact else f"LOWER({text_sql})"
        if self.op in _LIKE:
            return f"{folded} LIKE %s ESCAPE '\\'", [_LIKE[self.op].format(_like_escape(self.value))]
        return f"{folded} {_TEXT_OPERATORS[self.op]}", [self.value]

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        vendor = connection.vendor
        if not self.each:
            text_sql, extract_params = self._extract(column, self.key, vendor)
            compare, compare_params = self._compare(text_sql, vendor)
            # No value is "not equal" too: never NULL, so that NOT (...) holds for it.
            return f"COALESCE(({compare}), false)", [*params, *extract_params, *compare_params]
        if vendor == "postgresql":
            source = f"jsonb_array_elements(CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]' END)"
            element = "scim_item"
            source_params = [*params, *params]
        else:
            source, element, source_params = f"json_each({column})", "scim_item.value", list(params)
        text_sql, extract_params = self._extract(element, self.key, vendor)
        compare, compare_params = self._compare(text_sql, vendor)
        sql = f"EXISTS (SELECT 1 FROM {source} AS scim_item WHERE {compare})"  # noqa: S608 - no input in it
        return sql, [*source_params, *extract_params, *compare_params]


def _text(op: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid_filter(f"Operator {op} needs a string value here.")
    return value


def _match(context: FilterContext, match: JsonMatch, negate: bool = False) -> Q:
    q = Q(**{context.expression(match): True})
    return ~q if negate else q


def json_list(column: str, key: str, *, indexed: bool = False) -> Translator:
    """A sub-attribute of a multi-valued attribute kept as a JSON list (`phoneNumbers.value`).

    `indexed`: `eq` is the directory's own equality filter (apps.directory.profile_selectors, which
    the API and group rules use too): JSON containment on PostgreSQL, which the GIN index serves,
    comparing values as stored (emails with their domain in lower case)."""

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return _match(context, JsonMatch(column, op="pr", value=None, each=True, key=key))
        if value is None:
            raise invalid_filter(f"Operator {op} cannot compare with null here.")
        text = _text(op, value)
        if op == "eq" and indexed:
            return list_value_q(column, text, sub=key)
        compared = text.lower()
        return _match(context, JsonMatch(column, op=op, value=compared, each=True, key=key), negate=op == "ne")

    return translate


def either(first: Translator, second: Translator) -> Translator:
    """An attribute kept in two places (the company email and the other emails)."""

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "ne":
            return ~first("eq", value, context) & ~second("eq", value, context)
        return first(op, value, context) | second(op, value, context)

    return translate


# --- Custom attributes -------------------------------------------------------------------------


def _custom_value(definition: CustomAttribute, op: str, value: Any) -> tuple[Any, str]:
    """The filter's value as stored, and the kind of comparison."""
    kind = definition.type
    if kind == CustomAttributeType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise invalid_filter(f"{definition.name} compares with a number.")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise invalid_filter(f"{definition.name} compares with a number.") from None
        return (int(number) if number == number.to_integral_value() else float(number)), "number"
    if kind == CustomAttributeType.BOOLEAN:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool) or op not in ("eq", "ne"):
            raise invalid_filter(f"{definition.name} compares only with eq or ne and true or false.")
        return value, "boolean"
    text = _text(op, value)
    if kind == CustomAttributeType.DATE:
        return text[:10], "date"
    if kind == CustomAttributeType.ENUM:
        choices = {str(choice).lower(): str(choice) for choice in definition.choices or ()}
        return choices.get(text.lower(), text), "enum"
    return text, "string"


def custom_attribute(definition: CustomAttribute) -> Translator:
    """`urn:...:<org>:2.0:User:<name>`: values as the directory stores them (apps.directory)."""
    name = definition.name

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        multi = definition.multi_valued
        if op == "pr":
            if definition.type == CustomAttributeType.BOOLEAN:
                return Q(custom_attributes__has_key=name)
            return _match(context, JsonMatch("custom_attributes", op="pr", value=None, each=False, key=name))
        if value is None:
            raise invalid_filter(f"Operator {op} cannot compare with null here.")
        stored, kind = _custom_value(definition, op, value)
        if op in ("eq", "ne") and context.vendor == "postgresql" and kind != "string":
            # Exact stored forms (numbers, booleans, dates, enum choices): containment, which the
            # GIN index serves. Free text compares case-insensitively, by a scan.
            q = Q(custom_attributes__contains={name: [stored] if multi else stored})
            return ~q if op == "ne" else q
        comparable = stored.lower() if kind in ("string", "enum") else stored
        match_kind = {"number": "number", "boolean": "boolean"}.get(kind, "text")
        match = _custom_match(definition, "eq" if op == "ne" else op, comparable, match_kind, exact=kind == "date")
        return _match(context, match, negate=op == "ne")

    return translate


def _custom_match(definition: CustomAttribute, op: str, value: Any, kind: str, *, exact: bool = False) -> JsonMatch:
    if definition.multi_valued:
        return _ListOfKey("custom_attributes", definition.name, op=op, value=value, kind=kind, exact=exact)
    return JsonMatch("custom_attributes", op=op, value=value, each=False, key=definition.name, kind=kind, exact=exact)


class _ListOfKey(JsonMatch):
    """EXISTS an element of the list kept under `name` in a JSON object column."""

    def __init__(self, column: str, name: str, **kwargs: Any) -> None:
        super().__init__(column, each=True, key=None, **kwargs)
        self.name = name

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            inner = f"({column} -> %s)"
            source = f"jsonb_array_elements(CASE WHEN jsonb_typeof({inner}) = 'array' THEN {inner} ELSE '[]' END)"
            source_params = [*params, self.name, *params, self.name]
            element = "scim_item"
        else:
            source = f"json_each({column}, %s)"
            source_params = [*params, f'$."{self.name}"']
            element = "scim_item.value"
        text_sql, extract_params = self._extract(element, None, connection.vendor)
        compare, compare_params = self._compare(text_sql, connection.vendor)
        sql = f"EXISTS (SELECT 1 FROM {source} AS scim_item WHERE {compare})"  # noqa: S608 - no input in it
        return sql, [*source_params, *extract_params, *compare_params]


# --- Value filters on multi-valued attributes: one value must match them all -------------------


def _element_plan(node: Node, keys: dict[str, str]) -> tuple:
    """The filter inside `attr[...]`, checked and resolved to stored keys: a tree of tuples."""
    if isinstance(node, And | Or):
        return (type(node).__name__.upper(), tuple(_element_plan(term, keys) for term in node.terms))
    if isinstance(node, Not):
        return ("NOT", _element_plan(node.term, keys))
    if isinstance(node, ValuePath) or node.path.sub is not None or node.path.uri is not None:
        raise invalid_filter(f"Invalid attribute {getattr(node, 'path', '')} inside a value filter.")
    key = keys.get(node.path.attr)
    if key is None:
        raise invalid_filter(f"Cannot filter on {node.path.attr} here: unknown attribute.")
    if isinstance(node, Present):
        return ("PR", key, None)
    if key == "primary":
        value = node.value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if node.op not in ("eq", "ne") or not isinstance(value, bool):
            raise invalid_filter("primary compares only with eq or ne and true or false.")
        return ("BOOL", key, value if node.op == "eq" else not value)
    return ("CMP", key, node.op, _text(node.op, node.value).lower())


class JsonElementsMatch(Func):
    """EXISTS one element of a JSON list column for which a whole value filter holds."""

    output_field = BooleanField()

    def __init__(self, column: str, plan: tuple) -> None:
        super().__init__(F(column))
        self.plan = plan

    def _sql(self, plan: tuple, element: str, vendor: str) -> tuple[str, list]:
        kind = plan[0]
        if kind in ("AND", "OR"):
            parts = [self._sql(term, element, vendor) for term in plan[1]]
            return "(" + f" {kind} ".join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]
        if kind == "NOT":
            sql, params = self._sql(plan[1], element, vendor)
            return f"NOT {sql}", params
        key = plan[1]
        if vendor == "postgresql":
            text, params = f"({element} ->> %s)", [key]
        else:
            text, params = f"json_extract({element}, %s)", [f'$."{key}"']
        if kind == "PR":
            return f"(COALESCE({text}, '') <> '')", params
        if kind == "BOOL":
            truth = ("'true'", "'false'") if vendor == "postgresql" else ("1", "0")
            return f"(COALESCE({text}, {truth[1]}) = {truth[0] if plan[2] else truth[1]})", params
        _, _, op, value = plan
        if op in _LIKE:
            return f"(LOWER({text}) LIKE %s ESCAPE '\\')", [*params, _LIKE[op].format(_like_escape(value))]
        sql = f"(LOWER({text}) {_TEXT_OPERATORS[op]})"
        return (f"NOT COALESCE({sql}, false)" if op == "ne" else sql), [*params, value]

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            source = f"jsonb_array_elements(CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]' END)"
            element, source_params = "scim_item", [*params, *params]
        else:
            source, element, source_params = f"json_each({column})", "scim_item.value", list(params)
        condition, condition_params = self._sql(self.plan, element, connection.vendor)
        sql = f"EXISTS (SELECT 1 FROM {source} AS scim_item WHERE {condition})"  # noqa: S608 - no input in it
        return sql, [*source_params, *condition_params]


def json_value_path(column: str, sub_attributes: tuple[tuple[str, str], ...]) -> Callable[[Node, FilterContext], Q]:
    """`phoneNumbers[type eq "work" and value sw "+1"]`: one element matches every condition."""
    keys = {scim.lower(): key for key, scim in sub_attributes}

    def translate(node: Node, context: FilterContext) -> Q:
        return Q(**{context.expression(JsonElementsMatch(column, _element_plan(node, keys))): True})

    return translate


def emails_value_path(company_email: Callable[[Node, FilterContext], Q], sub_attributes) -> Callable:
    """`emails[...]`: the company email (a value of its own) or one of the others matches."""
    others = json_value_path("emails", sub_attributes)

    def translate(node: Node, context: FilterContext) -> Q:
        return company_email(node, context) | others(node, context)

    return translate
