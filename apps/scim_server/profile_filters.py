"""Filters on the profile attributes kept as JSON on the user row: multi-valued lists
(`phoneNumbers.value`, `emails.value`, `addresses.locality`...) and custom attributes.

On PostgreSQL, `eq` on a GIN-indexed column (`emails`, `phone_numbers`, `custom_attributes`, with
jsonb_path_ops) is JSON containment (`@>`), which the index serves. Every other comparison, and
every comparison on SQLite, is an EXISTS over the list's elements (json_each /
jsonb_array_elements): a scan, as SCIM's `co` or `gt` would be on any column.
"""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import BooleanField, F, Func, Q

from apps.directory.models import CustomAttribute, CustomAttributeType
from apps.scim_server.errors import invalid_filter
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
            return f"({compare})", [*params, *extract_params, *compare_params]
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


def json_list(column: str, key: str, *, indexed: bool = False, variants=None) -> Translator:
    """A sub-attribute of a multi-valued attribute kept as a JSON list (`phoneNumbers.value`).

    `indexed`: on PostgreSQL, `eq` is containment of `{key: value}` (GIN, jsonb_path_ops), for
    the value as given and each of `variants(value)` (how the directory may have stored it)."""

    def translate(op: str, value: Any, context: FilterContext) -> Q:
        if op == "pr":
            return _match(context, JsonMatch(column, op="pr", value=None, each=True, key=key))
        if value is None:
            raise invalid_filter(f"Operator {op} cannot compare with null here.")
        text = _text(op, value)
        if op == "eq" and indexed and context.vendor == "postgresql":
            forms = dict.fromkeys([text, *(variants(text) if variants else ())])
            q = Q()
            for form in forms:
                q |= Q(**{f"{column}__contains": [{key: form}]})
            return q
        compared = text.lower()
        return _match(context, JsonMatch(column, op=op, value=compared, each=True, key=key), negate=op == "ne")

    return translate


def email_variants(text: str) -> list[str]:
    """An email as the directory stores it (domain lower-cased), and all in lower case."""
    local, at, domain = text.rpartition("@")
    return [f"{local}@{domain.lower()}", text.lower()] if at else [text.lower()]


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
