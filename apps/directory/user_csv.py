"""Users as CSV: an export of every attribute (custom ones as `custom.<name>` columns) and an import
that creates or updates users row by row through apps.directory.services.

The file an export writes imports back unchanged. Multi-valued cells read `value (type, primary)`
items separated by `;` ("+1 555 0100 (work, primary); +1 555 0199 (mobile)"); addresses are a JSON
list (any list cell may be one). The manager is named by username, email or id. Only the columns a
file has are changed, and an empty cell clears its attribute. Each row is its own transaction: a
row that is refused (with the reasons, by line) leaves the others written.
"""

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from apps.audit.services import Actor
from apps.common.csv_files import read_csv_lines
from apps.common.errors import ApplicationError, field_error
from apps.directory import selectors, services
from apps.directory.attributes import CUSTOM_PREFIX, MULTI_VALUED_FIELDS, PROFILE_TEXT_FIELDS
from apps.directory.models import CustomAttribute, User, UserStatus

USER_CSV_MAX_ROWS = 5000
# Refused rows listed in the report (all are counted).
USER_CSV_ERRORS_KEPT = 500
CORE_COLUMNS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "employee_id",
    "external_id",
    "status",
)
PROFILE_COLUMNS = (*PROFILE_TEXT_FIELDS, *MULTI_VALUED_FIELDS, "manager")
# Spreadsheets run a cell that starts with one of these as a formula: exports quote them with a
# leading apostrophe, and imports take it off again.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_ITEM = re.compile(r"^(?P<value>.*?)\s*\((?P<flags>[^()]*)\)\s*$")


@dataclass
class RowError:
    line: int
    username: str
    errors: dict[str, list[str]]


@dataclass
class UserImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "refused": self.refused,
            "errors": [{"line": e.line, "username": e.username, "errors": e.errors} for e in self.errors],
        }


# --- Export -----------------------------------------------------------------------------------------


def export_columns(definitions: Iterable[CustomAttribute]) -> list[str]:
    return [*CORE_COLUMNS, *PROFILE_COLUMNS, *(f"{CUSTOM_PREFIX}{d.name}" for d in definitions)]


def _safe_cell(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def format_items(name: str, items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    if name == "addresses" or any(";" in str(item.get("value", "")) or item.get("display") for item in items):
        return json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    parts = []
    for item in items:
        flags = [flag for flag in (item.get("type") or "", "primary" if item.get("primary") else "") if flag]
        parts.append(f"{item['value']} ({', '.join(flags)})" if flags else str(item["value"]))
    return "; ".join(parts)


def _format_custom(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(_format_custom(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def user_csv_row(user: User, definitions: list[CustomAttribute]) -> list[str]:
    cells = [str(getattr(user, name) or "") for name in CORE_COLUMNS]
    cells += [str(getattr(user, name) or "") for name in PROFILE_TEXT_FIELDS]
    cells += [format_items(name, getattr(user, name) or []) for name in MULTI_VALUED_FIELDS]
    cells.append(user.manager.username if user.manager_id and user.manager else "")
    values = user.custom_attributes or {}
    cells += [_format_custom(values.get(definition.name)) for definition in definitions]
    return [_safe_cell(cell) for cell in cells]


class _Echo:
    def write(self, value: str) -> str:
        return value


def user_csv_lines(users: QuerySet[User]) -> Iterator[str]:
    """The header and one line per user, streamed in chunks (memory stays flat)."""
    definitions = list(CustomAttribute.objects.order_by("name"))
    writer = csv.writer(_Echo())
    yield writer.writerow(export_columns(definitions))
    for user in users.select_related("manager").order_by("username").iterator(chunk_size=2000):
        yield writer.writerow(user_csv_row(user, definitions))


# --- Import -----------------------------------------------------------------------------------------


def _unquote(cell: str) -> str:
    text = cell.strip()
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_PREFIXES and text[1:2] else text


def parse_items(name: str, cell: str) -> list[dict[str, Any]]:
    """A multi-valued cell: a JSON list, or `value (type, primary)` items separated by `;`."""
    if not cell:
        return []
    if cell.startswith("["):
        try:
            items = json.loads(cell)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a valid JSON list ({exc.msg})") from exc
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return items
    if name == "addresses":
        return [{"formatted": cell}]
    items = []
    for part in (piece.strip() for piece in cell.split(";")):
        if not part:
            continue
        match = _ITEM.match(part)
        item: dict[str, Any] = {"value": part}
        if match:
            flags = [flag.strip() for flag in match["flags"].split(",") if flag.strip()]
            item = {"value": match["value"], "primary": "primary" in (flag.lower() for flag in flags)}
            kinds = [flag for flag in flags if flag.lower() != "primary"]
            if kinds:
                item["type"] = kinds[0]
        items.append(item)
    return items


def _parse_custom(definition: CustomAttribute, cell: str) -> Any:
    if not cell:
        return None
    if definition.multi_valued:
        return [part.strip() for part in cell.split(";") if part.strip()]
    return cell


def read_user_csv(content: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the (line number, {column: cell}) rows of a file; a ValidationError on `file`
    names what is wrong with the file as a whole."""
    lines = read_csv_lines(content)
    if not lines:
        raise field_error("file", "The file is empty.")
    header = [cell.strip() for cell in lines[0]]
    definitions = {d.name.lower(): d.name for d in CustomAttribute.objects.all()}
    known = {column.lower(): column for column in (*CORE_COLUMNS, *PROFILE_COLUMNS)}
    columns, unknown = [], []
    for cell in header:
        lowered = cell.lower()
        if lowered.startswith(CUSTOM_PREFIX) and lowered[len(CUSTOM_PREFIX) :] in definitions:
            columns.append(f"{CUSTOM_PREFIX}{definitions[lowered[len(CUSTOM_PREFIX) :]]}")
        elif lowered in known:
            columns.append(known[lowered])
        else:
            columns.append("")
            unknown.append(cell)
    if unknown:
        raise field_error("file", f"Unknown columns: {', '.join(unknown)}. Columns: {', '.join(known)}, custom.<name>.")
    if "username" not in columns:
        raise field_error("file", "The file needs a username column (the first line names the columns).")
    if len(set(columns)) != len(columns):
        raise field_error("file", "A column is named twice.")
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        padded = [*cells, *[""] * (len(columns) - len(cells))]
        rows.append((number, {column: _unquote(padded[i]) for i, column in enumerate(columns)}))
    if len(rows) > USER_CSV_MAX_ROWS:
        raise field_error("file", f"The file has {len(rows):,} rows; at most {USER_CSV_MAX_ROWS:,} at a time.")
    return columns, rows


def _manager_by_identity(value: str) -> User | None:
    """The user a manager cell names: an id, a username or an email."""
    try:
        return User.objects.filter(pk=UUID(value)).first()
    except ValueError:
        pass
    return selectors.user_get_by_username(value) or (selectors.user_get_by_email(value) if "@" in value else None)


def _row_changes(row: dict[str, str], definitions: dict[str, CustomAttribute]) -> tuple[dict[str, Any], dict]:
    changes: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    custom: dict[str, Any] = {}
    for column, cell in row.items():
        if column.startswith(CUSTOM_PREFIX):
            custom[column[len(CUSTOM_PREFIX) :]] = _parse_custom(definitions[column[len(CUSTOM_PREFIX) :]], cell)
        elif column in MULTI_VALUED_FIELDS:
            try:
                changes[column] = parse_items(column, cell)
            except ValueError as exc:
                errors[column] = [str(exc)]
        elif column == "manager":
            changes["manager"] = _manager_by_identity(cell) if cell else None
            if cell and changes["manager"] is None:
                errors["manager"] = [f"No user is named {cell!r} (username, email or id)."]
        else:
            changes[column] = cell
    if custom:
        changes["custom_attributes"] = custom
    return changes, errors


def _messages(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {name: [m for error in errors for m in error.messages] for name, errors in exc.error_dict.items()}
    return {"row": list(exc.messages)}


def _apply_row(actor: Actor, changes: dict[str, Any]) -> str:
    """Create or update the row's user; "created", "updated" or "unchanged"."""
    username = changes.pop("username")
    status = changes.pop("status", "") or None
    if status is not None and status not in UserStatus.values:
        raise field_error("status", f"Choose one of {', '.join(UserStatus.values)}.")
    user = selectors.user_get_by_username(username) if username else None
    if user is None:
        services.user_create(actor=actor, username=username, status=status or UserStatus.ACTIVE, **changes)
        return "created"
    if "custom_attributes" in changes:  # only the file's columns change; an empty cell clears
        merged = {**(user.custom_attributes or {}), **changes["custom_attributes"]}
        changes["custom_attributes"] = {name: value for name, value in merged.items() if value is not None}
    before = user.updated
    user = services.user_update(actor=actor, user=user, **changes)
    if status and status != user.status:
        user = services.user_set_status(actor=actor, user=user, status=status)
    return "unchanged" if user.updated == before else "updated"


def user_csv_import(*, actor: Actor, content: bytes) -> UserImportReport:
    """Create or update a user for each row; refused rows are reported by line, never half-written."""
    _columns, rows = read_user_csv(content)
    definitions = {d.name: d for d in CustomAttribute.objects.all()}
    report = UserImportReport()
    for line, row in rows:
        username = row.get("username", "")
        changes, errors = _row_changes(row, definitions)
        if not errors:
            try:
                with transaction.atomic():
                    outcome = _apply_row(actor, changes)
                setattr(report, outcome, getattr(report, outcome) + 1)
                continue
            except ValidationError as exc:
                errors = _messages(exc)
            except ApplicationError as exc:  # staff rank, last super-admin...
                errors = {"row": [exc.message]}
        report.refused += 1
        if len(report.errors) < USER_CSV_ERRORS_KEPT:
            report.errors.append(RowError(line=line, username=username, errors=errors))
    return report
