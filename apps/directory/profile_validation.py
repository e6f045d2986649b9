"""Cleaning of profile values before a user is written: pure functions of the values and the custom
attribute definitions (the manager, which needs the database, is checked in apps.directory.profile).

Each cleaner returns the cleaned value or raises ProfileValueError with a message for people; the
caller collects them per field so that one answer names every problem.
"""

import datetime
import re
import zoneinfo
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from apps.directory.attributes import MULTI_VALUED_FIELDS, PROFILE_TEXT_FIELDS
from apps.directory.models import URL_MAX_LENGTH, CustomAttribute, CustomAttributeType

MULTI_VALUED_MAX_ITEMS = 20
ITEM_TEXT_MAX_LENGTH = 255
ITEM_TYPE_MAX_LENGTH = 64
PHONE_MAX_LENGTH = 64
FORMATTED_ADDRESS_MAX_LENGTH = 1000
CUSTOM_STRING_MAX_LENGTH = 1000
CUSTOM_VALUES_MAX_ITEMS = 100

# A BCP 47 language tag (RFC 5646) as locale and preferredLanguage use it: "en", "en-US",
# "zh-Hant-TW". Java-style "en_US" is also accepted: HR systems send it.
_LANGUAGE_TAG = r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*"
LOCALE_PATTERN = re.compile(rf"^{_LANGUAGE_TAG}\Z")
# preferredLanguage is an Accept-Language value (RFC 7231 5.3.5): "da, en-GB;q=0.8, en;q=0.7".
_LANGUAGE_RANGE = re.compile(rf"^(?:\*|{_LANGUAGE_TAG})(?:\s*;\s*q=(?:0(?:\.\d{{0,3}})?|1(?:\.0{{0,3}})?))?\Z")

_validate_email = EmailValidator()
_validate_web_url = URLValidator(schemes=["http", "https"])

_TRUE = {"true", "yes", "1", "y", "on"}
_FALSE = {"false", "no", "0", "n", "off", ""}


class ProfileValueError(ValueError):
    """A value that cannot be stored; its message is safe to show."""


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def clean_language_range(value: str) -> str:
    parts = [part.strip() for part in value.split(",")]
    if not all(_LANGUAGE_RANGE.match(part) for part in parts):
        raise ProfileValueError('Enter a language tag such as "en-US", or a list such as "fr-CA, fr;q=0.8, en;q=0.5".')
    return ", ".join(parts)


def clean_locale(value: str) -> str:
    if not LOCALE_PATTERN.match(value):
        raise ProfileValueError('Enter a locale as a language tag, such as "en-US" or "fr-CA".')
    return value


def clean_timezone(value: str) -> str:
    if value not in _time_zones():
        raise ProfileValueError('Enter an IANA time zone, such as "Europe/Paris" or "America/New_York".')
    return value


def clean_web_url(value: str) -> str:
    if len(value) > URL_MAX_LENGTH:
        raise ProfileValueError(f"Enter a URL of at most {URL_MAX_LENGTH} characters.")
    try:
        _validate_web_url(value)
    except ValidationError as exc:
        raise ProfileValueError("Enter a valid http or https URL.") from exc
    return value


def _clean_email_type(text: str) -> str:
    if len(text) > ITEM_TYPE_MAX_LENGTH:
        raise ProfileValueError(f"A type has at most {ITEM_TYPE_MAX_LENGTH} characters.")
    return text


_TEXT_CLEANERS = {
    "email_type": _clean_email_type,
    "preferred_language": clean_language_range,
    "locale": clean_locale,
    "timezone": clean_timezone,
    "profile_url": clean_web_url,
}


def clean_profile_text(name: str, value: Any) -> str:
    """A scalar profile field: stripped text ("" for None), in its format where it has one."""
    if name not in PROFILE_TEXT_FIELDS:
        raise KeyError(name)
    if isinstance(value, bool) or (value is not None and not isinstance(value, str | int | float)):
        raise ProfileValueError("Enter text.")
    text = "" if value is None else str(value).strip()
    if text and name in _TEXT_CLEANERS:
        return _TEXT_CLEANERS[name](text)
    return text


# --- Multi-valued attributes ----------------------------------------------------------------------


def _item_text(item: dict, key: str, limit: int) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ProfileValueError(f"`{key}` must be text.")
    text = str(value).strip()
    if len(text) > limit:
        raise ProfileValueError(f"`{key}` has more than {limit} characters.")
    return text


def _item_primary(item: dict) -> bool:
    value = item.get("primary", False)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if not isinstance(value, bool) and value is not None:
        raise ProfileValueError("`primary` must be true or false.")
    return bool(value)


def _clean_value(field: str, text: str) -> str:
    if not text:
        raise ProfileValueError("`value` is required.")
    if field == "emails":
        try:
            _validate_email(text)
        except ValidationError as exc:
            raise ProfileValueError(f"{text!r} is not a valid email address.") from exc
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"
    if field == "photos":
        return clean_web_url(text)
    if field == "phone_numbers" and len(text) > PHONE_MAX_LENGTH:
        raise ProfileValueError(f"A phone number has at most {PHONE_MAX_LENGTH} characters.")
    return text


def clean_item(field: str, item: Any) -> dict[str, Any]:
    """One element of a multi-valued attribute, with exactly its known keys."""
    if not isinstance(item, dict):
        raise ProfileValueError("Each item must be an object.")
    known = {key for key, _ in MULTI_VALUED_FIELDS[field]}
    unknown = sorted(set(item) - known)
    if unknown:
        raise ProfileValueError(f"Unknown part {', '.join(map(repr, unknown))}; expected {', '.join(sorted(known))}.")
    cleaned: dict[str, Any] = {}
    if field == "addresses":
        for key in known - {"type", "primary"}:
            limit = FORMATTED_ADDRESS_MAX_LENGTH if key == "formatted" else ITEM_TEXT_MAX_LENGTH
            cleaned[key] = _item_text(item, key, limit)
        if not any(cleaned.values()):
            raise ProfileValueError("An address needs at least one part.")
    else:
        cleaned["value"] = _clean_value(field, _item_text(item, "value", URL_MAX_LENGTH))
        if "display" in item:
            cleaned["display"] = _item_text(item, "display", ITEM_TEXT_MAX_LENGTH)
    cleaned["type"] = _item_text(item, "type", ITEM_TYPE_MAX_LENGTH)
    cleaned["primary"] = _item_primary(item)
    return cleaned


def clean_items(field: str, items: Any) -> list[dict[str, Any]]:
    """A whole multi-valued attribute; raises ProfileValueError naming the item that is wrong."""
    if items is None or items == "":
        return []
    if not isinstance(items, list | tuple):
        raise ProfileValueError("Enter a list.")
    if len(items) > MULTI_VALUED_MAX_ITEMS:
        raise ProfileValueError(f"At most {MULTI_VALUED_MAX_ITEMS} items.")
    cleaned = []
    for number, item in enumerate(items, start=1):
        try:
            cleaned.append(clean_item(field, item))
        except ProfileValueError as exc:
            raise ProfileValueError(f"Item {number}: {exc}") from exc
    primaries = sum(1 for item in cleaned if item["primary"])
    if field == "emails" and primaries:
        raise ProfileValueError("The company email is the primary email: other emails cannot be primary.")
    if primaries > 1:
        raise ProfileValueError("At most one item may be primary.")
    return cleaned


# --- Custom attributes ----------------------------------------------------------------------------


def _coerce_one(definition: CustomAttribute, value: Any) -> Any:
    kind = definition.type
    if kind == CustomAttributeType.STRING:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ProfileValueError("Enter text.")
        text = str(value).strip()
        if len(text) > CUSTOM_STRING_MAX_LENGTH:
            raise ProfileValueError(f"At most {CUSTOM_STRING_MAX_LENGTH} characters.")
        return text
    if kind == CustomAttributeType.NUMBER:
        if isinstance(value, bool):
            raise ProfileValueError("Enter a number.")
        if isinstance(value, str):
            try:
                value = float(value.strip()) if re.search(r"[.eE]", value) else int(value.strip())
            except ValueError as exc:
                raise ProfileValueError(f"{value!r} is not a number.") from exc
        if not isinstance(value, int | float) or value != value or value in (float("inf"), float("-inf")):
            raise ProfileValueError("Enter a number.")
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if kind == CustomAttributeType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE - {""}:
            return value.strip().lower() in _TRUE
        raise ProfileValueError("Enter true or false.")
    if kind == CustomAttributeType.DATE:
        text = value.strip() if isinstance(value, str) else ""
        try:
            return datetime.date.fromisoformat(text[:10] if "T" in text else text).isoformat()
        except ValueError as exc:
            raise ProfileValueError("Enter a date as YYYY-MM-DD.") from exc
    if kind == CustomAttributeType.ENUM:
        choices = {str(choice).lower(): str(choice) for choice in definition.choices or ()}
        text = str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        if text is None or text.lower() not in choices:
            raise ProfileValueError(f"Choose one of: {', '.join(map(str, definition.choices or ()))}.")
        return choices[text.lower()]
    raise ProfileValueError(f"Unknown attribute type {kind!r}.")


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def coerce_custom_value(definition: CustomAttribute, value: Any) -> Any:
    """A custom attribute's value as stored (a list when multi-valued), or None when empty."""
    if is_empty(value):
        return None
    if definition.multi_valued:
        items = list(value) if isinstance(value, list | tuple) else [value]
        if len(items) > CUSTOM_VALUES_MAX_ITEMS:
            raise ProfileValueError(f"At most {CUSTOM_VALUES_MAX_ITEMS} values.")
        cleaned = []
        for item in items:
            if is_empty(item):
                continue
            one = _coerce_one(definition, item)
            if one not in cleaned:
                cleaned.append(one)
        return cleaned or None
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise ProfileValueError("This attribute takes one value.")
        value = value[0]
    result = _coerce_one(definition, value)
    return None if is_empty(result) else result


def clean_custom_attributes(
    values: Any,
    definitions: list[CustomAttribute],
    *,
    current: dict[str, Any],
    creating: bool,
) -> tuple[dict[str, Any], dict[str, list[ValidationError]]]:
    """The user's whole custom-attribute dict as stored, and errors keyed `custom_attributes.<name>`.

    Names match case-insensitively and are stored as defined. A required attribute must have a
    value on a new user, and cannot lose the one it has (users created before it became required
    keep working until someone fills it in).
    """
    errors: dict[str, list[ValidationError]] = {}
    if values is None:
        values = {}
    if not isinstance(values, dict):
        return dict(current), {"custom_attributes": [ValidationError("Enter an object of name: value.")]}
    by_name = {definition.name.lower(): definition for definition in definitions}
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        definition = by_name.get(str(name).lower())
        if definition is None:
            errors[f"custom_attributes.{name}"] = [
                ValidationError(f"No custom attribute is named {name!r}.", code="unknown_attribute")
            ]
            continue
        try:
            result = coerce_custom_value(definition, value)
        except ProfileValueError as exc:
            errors[f"custom_attributes.{definition.name}"] = [ValidationError(str(exc), code="invalid")]
            continue
        if result is not None:
            cleaned[definition.name] = result
    for definition in definitions:
        key = f"custom_attributes.{definition.name}"
        missing = definition.required and definition.name not in cleaned and key not in errors
        if missing and (creating or definition.name in current):
            errors[key] = [ValidationError("This attribute is required.", code="required")]
    return cleaned, errors
