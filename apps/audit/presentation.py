"""Audit events as people and SIEMs read them: a before -> after list of changes, and one flat record
per event with a documented field list (the CSV and JSON Lines exports share it)."""

import json
from dataclasses import dataclass
from typing import Any

from apps.audit.models import AuditEvent

# The exported fields, in order, with what each holds (README: "Audit log export").
EXPORT_FIELDS: dict[str, str] = {
    "id": "the event's sequence number (increases with time)",
    "time": "when, ISO 8601 with the UTC offset",
    "actor": "who: a username, scim:<token name>, or system",
    "actor_id": "the acting user's id, empty for tokens and the system",
    "action": "what happened, <family>.<verb> (user.suspend, connector.activated)",
    "target_type": "the kind of object changed (directory.user, connectors.connector)",
    "target_id": "its id",
    "target": "its name when the event was written",
    "before": "the changed fields before (JSON object), empty for none",
    "after": "the changed fields after (JSON object), empty for none",
    "ip": "the client address, as far as trusted proxies tell",
    "request_id": "the request's id, shared by every event one request wrote",
}


@dataclass(frozen=True)
class Change:
    field: str
    before: str
    after: str


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys ({"sso": {"sign": "both"}} -> {"sso.sign": "both"})."""
    if not isinstance(value, dict):
        return {prefix: value} if prefix else {}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            flat.update(_flat(item, name))
        else:
            flat[name] = item
    return flat


def display_value(value: Any) -> str:
    """A value as a person reads it: text as is, everything else as compact JSON; nothing as an empty string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def event_changes(event: AuditEvent) -> list[Change]:
    """Each field the event names, with its value before and after (one side empty for creations,
    deletions and facts such as {"ok": true})."""
    before, after = _flat(event.before or {}), _flat(event.after or {})
    fields = list(before) + [name for name in after if name not in before]
    return [Change(name, display_value(before.get(name)), display_value(after.get(name))) for name in fields]


def _json_or_empty(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def event_record(event: AuditEvent, *, nested: bool) -> dict[str, Any]:
    """The export record of an event: `nested` keeps before/after as objects (JSON Lines), else JSON text (CSV)."""
    return {
        "id": event.pk,
        "time": event.created.isoformat(),
        "actor": event.actor_label,
        "actor_id": str(event.actor_id) if event.actor_id else "",
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target": event.target_label,
        "before": event.before if nested else _json_or_empty(event.before),
        "after": event.after if nested else _json_or_empty(event.after),
        "ip": event.ip or "",
        "request_id": event.request_id,
    }
