"""Writing the audit trail. Called inside other services' transactions, never on its own."""

from dataclasses import dataclass
from typing import Any

from django.db import models

from apps.audit.context import current_request_context
from apps.audit.models import AuditEvent
from apps.common.db import insert_row

SYSTEM_ACTOR_LABEL = "system"


@dataclass(frozen=True)
class SystemActor:
    """A non-person actor, such as a SCIM client's token, optionally acting for a user.

    `manages_staff`: it may change staff accounts (apps.directory.roles); only a super-admin grants that."""

    label: str
    user: Any | None = None
    manages_staff: bool = False


# A person (a directory User), a SystemActor, or None for the portal itself.
Actor = Any


def audit_record(
    *,
    actor: Any | None,
    action: str,
    target: models.Model | None = None,
    target_label: str = "",
    before: dict | None = None,
    after: dict | None = None,
    actor_label: str = "",
) -> None:
    """Record one change. `actor` is the acting user (None for the system or a token's owner-less client).

    The row is written in the caller's transaction; nothing is read back, so inside
    `apps.common.db.batched_statements` it travels with the statements around it."""
    context = current_request_context()
    if isinstance(actor, SystemActor):
        actor_label = actor_label or actor.label
        actor = actor.user
    if not actor_label:
        actor_label = getattr(actor, "username", "") or SYSTEM_ACTOR_LABEL
    target_type = ""
    target_id = ""
    if target is not None:
        target_type = target._meta.label_lower
        target_id = str(target.pk)
        target_label = target_label or str(target)
    event = AuditEvent(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=actor_label[:255],
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label[:255],
        before=before,
        after=after,
        request_id=context.request_id,
        ip=context.ip,
    )
    # A prepared INSERT, not save(): every change writes one (apps.common.db.insert_row).
    insert_row(event)


@dataclass(frozen=True)
class AuditEntry:
    """One row of a bulk change (`audit_record_many`): its target named by type, id and label."""

    target_type: str
    target_id: str
    target_label: str
    before: dict | None = None
    after: dict | None = None


AUDIT_BULK_BATCH_SIZE = 2000
AUDIT_PREPARED_ROWS = 20


def audit_record_many(*, actor: Any | None, action: str, entries: list[AuditEntry]) -> int:
    """Record one change per entry, as `audit_record` would, in batched INSERTs: a bulk change (a
    group rule re-deriving 50,000 members) keeps a row per object without a round trip per row."""
    if not entries:
        return 0
    context = current_request_context()
    actor_label = ""
    if isinstance(actor, SystemActor):
        actor_label = actor.label
        actor = actor.user
    actor_label = (actor_label or getattr(actor, "username", "") or SYSTEM_ACTOR_LABEL)[:255]
    actor_row = actor if getattr(actor, "pk", None) else None
    events = [
        AuditEvent(
            actor=actor_row,
            actor_label=actor_label,
            action=action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            target_label=entry.target_label[:255],
            before=entry.before,
            after=entry.after,
            request_id=context.request_id,
            ip=context.ip,
        )
        for entry in entries
    ]
    if len(events) <= AUDIT_PREPARED_ROWS:
        # A few rows (one user's change): prepared INSERTs that read nothing back, so they travel
        # in the caller's batched round trip; bulk_create would wait for the ids it returns.
        for event in events:
            insert_row(event)
    else:
        AuditEvent.objects.bulk_create(events, batch_size=AUDIT_BULK_BATCH_SIZE)
    return len(events)
