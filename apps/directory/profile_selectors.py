"""Equality filters on profile attributes, as conditions (Q) any list can apply: the API's users
list, the console's filters, SCIM `eq` filters and group rules.

Each is written the way its index serves it: text as UPPER(col) = UPPER(value) (title and
department have expression indexes), the manager by its FK index, and list and custom values as
JSON containment (`@>`) on PostgreSQL, where GIN jsonb_path_ops indexes serve them. SQLite has
no containment operator: there the same conditions read the JSON with json_each (and scan).
"""

from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

from apps.directory.attributes import CUSTOM_PREFIX, MULTI_VALUED_FIELDS, PROFILE_TEXT_FIELDS
from apps.directory.models import CustomAttribute
from apps.directory.profile_validation import ProfileValueError, coerce_custom_value

# Text attributes compared case-insensitively (RFC 7643 caseExact false) besides the profile's.
_OTHER_TEXT_KEYS = ("username", "email", "first_name", "last_name", "display_name")
_CASE_EXACT_TEXT_KEYS = ("employee_id", "external_id")


class UnknownFilter(ValueError):
    """A filter on a key that is not a filterable attribute, or a value it cannot take; `key` names
    the filter."""

    key: str = ""


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def list_value_q(field: str, value: str, *, sub: str = "value") -> Q:
    """Users whose multi-valued `field` has an item whose `sub` equals `value`."""
    if field not in MULTI_VALUED_FIELDS or sub not in {key for key, _ in MULTI_VALUED_FIELDS[field]}:
        raise UnknownFilter(f"{field}.{sub} cannot be filtered on.")
    if field == "emails" and "@" in value:  # stored with the domain in lower case
        local, _, domain = value.rpartition("@")
        value = f"{local}@{domain.lower()}"
    if _on_postgresql():
        return Q(**{f"{field}__contains": [{sub: value}]})
    # The column is one of MULTI_VALUED_FIELDS (checked above), never a name from the request.
    sql = f'SELECT u."id" FROM "directory_user" u, json_each(u."{field}") item WHERE json_extract(item.value, %s) = %s'  # noqa: S608
    return Q(pk__in=RawSQL(sql, [f"$.{sub}", value]))  # noqa: S611


def custom_value_q(definition: CustomAttribute, value: Any) -> Q:
    """Users whose custom attribute has `value` (one of its values, when multi-valued); the value is
    read as the attribute's type, so "42" finds the number 42."""
    try:
        wanted = coerce_custom_value(definition, [value] if definition.multi_valued else value)
    except ProfileValueError as exc:
        raise UnknownFilter(f"{CUSTOM_PREFIX}{definition.name}: {exc}") from exc
    if wanted is None:
        return ~Q(custom_attributes__has_key=definition.name)
    if _on_postgresql():
        return Q(custom_attributes__contains={definition.name: wanted})
    if definition.multi_valued:
        return Q(
            pk__in=RawSQL(
                'SELECT u."id" FROM "directory_user" u, json_each(u."custom_attributes", %s) item '
                "WHERE item.value = %s",
                [f'$."{definition.name}"', wanted[0]],
            )
        )
    return Q(**{f"custom_attributes__{definition.name}": wanted})


def profile_filter_q(key: str, value: Any) -> Q:
    """Users whose attribute `key` (a registry key, or `<list>.value`) equals `value`."""
    try:
        return _filter_q(key, value)
    except UnknownFilter as exc:
        exc.key = key
        raise


def _filter_q(key: str, value: Any) -> Q:
    if key.startswith(CUSTOM_PREFIX):
        definition = CustomAttribute.objects.filter(name__iexact=key[len(CUSTOM_PREFIX) :]).first()
        if definition is None:
            raise UnknownFilter(f"No custom attribute is named {key[len(CUSTOM_PREFIX) :]!r}.")
        return custom_value_q(definition, value)
    if key == "manager":
        if value in (None, ""):
            return Q(manager__isnull=True)
        try:
            return Q(manager_id=UUID(str(value)))
        except ValueError as exc:
            raise UnknownFilter("manager: enter a user id.") from exc
    field, _, sub = key.partition(".")
    if field in MULTI_VALUED_FIELDS:
        return list_value_q(field, str(value), sub=sub or "value")
    if key in PROFILE_TEXT_FIELDS or key in _OTHER_TEXT_KEYS:
        return Q(**{f"{key}__iexact": str(value)})
    if key in _CASE_EXACT_TEXT_KEYS:
        return Q(**{key: str(value)})
    raise UnknownFilter(f"{key} cannot be filtered on.")
