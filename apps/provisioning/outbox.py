"""Recording lifecycle changes for the connectors that must hear of them: the provisioning outbox.

The public entry of provisioning for other apps: the directory and connector services call the
`record_*` functions inside their own transaction, so the outbox rows commit or roll back with the
change, and a worker is asked for only after commit (`dispatch.kick`).
"""

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.common.db import hot_path_cursor
from apps.connectors.models import (
    Assignment,
    AttributeMapping,
    Connector,
    ConnectorKind,
    MappingKind,
    ProvisioningSettings,
)
from apps.connectors.properties import attributes_read
from apps.connectors.selectors import users_in_scope
from apps.directory.models import Group, Membership, User
from apps.directory.profile import reports_affected
from apps.provisioning import waiting
from apps.provisioning.dispatch import continue_in_background, kick
from apps.provisioning.models import FullSyncRecording, ObjectType, OutboxEvent, RemoteObject

_PROVISIONING_KINDS = (ConnectorKind.SCIM, ConnectorKind.SAML_SCIM)


def _active_connector_sql() -> str:
    connectors = Connector._meta.db_table
    settings_table = ProvisioningSettings._meta.db_table
    # Table names come from the models; the only values are bound parameters.
    return (
        f'SELECT c."id" FROM "{connectors}" c JOIN "{settings_table}" p ON p."connector_id" = c."id" '  # noqa: S608
        'WHERE c."enabled" AND p."enabled" AND c."kind" IN (%s, %s)'
    )


def _active_connectors() -> list[Connector]:
    """Connectors that provision now. Every directory write asks, and most deployments have none
    or few: the question is written-out SQL (the ORM's compile of the same join cost about 0.6 ms
    of each SCIM write, bench/scim_server.py), and the rows are loaded only when there are some."""
    with hot_path_cursor() as cursor:
        cursor.execute(_active_connector_sql(), list(_PROVISIONING_KINDS))
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    return list(Connector.objects.filter(pk__in=ids).select_related("provisioning"))


def record_events(connector: Connector, object_type: str, object_ids: Iterable[Any], reason: str) -> int:
    """Outbox rows (and the RemoteObject rows they point at) for these objects on one connector."""
    ids = list(dict.fromkeys(str(object_id) for object_id in object_ids))
    if not ids:
        return 0
    RemoteObject.objects.bulk_create(
        [RemoteObject(connector=connector, object_type=object_type, object_id=object_id) for object_id in ids],
        ignore_conflicts=True,
    )
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(connector=connector, object_type=object_type, object_id=object_id, reason=reason)
            for object_id in ids
        ],
        batch_size=1000,
    )
    kick(connector.pk)
    return len(ids)


def record_events_for(connector: Connector, object_type: str, ids: QuerySet, reason: str) -> int:
    """`record_events` for the object ids a query selects (one column), written by the database.

    A full sync or a group assignment can name a million objects: INSERT ... SELECT statements
    write their links and events without loading an id into Python (about 1 GB of rows and
    statements at a million users otherwise).
    """
    quote = connection.ops.quote_name
    ids_sql, ids_params = ids.order_by().query.sql_with_params()
    now = RemoteObject._meta.get_field("updated").get_db_prep_value(timezone.now(), connection)
    key = [Connector._meta.pk.get_db_prep_value(connector.pk, connection), object_type]
    # A new link as RemoteObject's defaults make it (the columns left out are NULL).
    defaults = {"label": "", "remote_id": "", "status": "pending", "last_sent_hash": "", "remote_members": "[]",
                "last_error": "", "attempts": 0, "lease_owner": "", "updated": now}  # fmt: skip
    columns = ", ".join(quote(RemoteObject._meta.get_field(name).column) for name in defaults)
    jsonb = "::jsonb" if connection.vendor == "postgresql" else ""
    values = ", ".join(f"%s{jsonb}" if name == "remote_members" else "%s" for name in defaults)
    names = _Names(
        links=quote(RemoteObject._meta.db_table),
        outbox=quote(OutboxEvent._meta.db_table),
        key=f"{quote('connector_id')}, {quote('object_type')}, {quote('object_id')}",
        columns=columns,
        values=values,
        event_columns=f"{quote('reason')}, {quote('created')}",
    )
    link_params = [*key, *defaults.values()]
    event_params = [*key, reason, now]
    if connection.vendor == "postgresql":
        count = _record_counted(names, ids_sql, [*ids_params, *link_params, *key, *event_params])
    else:
        count = _record_then_count(names, ids_sql, ids_params, link_params, event_params)
    if count:
        kick(connector.pk)
    return max(count, 0)


@dataclass(frozen=True)
class _Names:
    """Quoted table and column names, and the placeholders of a new link's values."""

    links: str
    outbox: str
    key: str  # connector_id, object_type, object_id
    columns: str  # a new link's default columns
    values: str  # their placeholders
    event_columns: str  # reason, created


def _record_then_count(names: _Names, ids_sql: str, ids_params: tuple, link_params: list, event_params: list) -> int:
    """Links, then events, in two statements; the outbox's triggers count each link's waiting events
    (SQLite). No WITH clause: SQLite's driver reports no row count for a statement that does not
    start with INSERT. "WHERE 1 = 1" lets SQLite tell the upsert clause from a join's ON."""
    picked = f"FROM ({ids_sql}) picked"  # one column: `picked.*` is the object id
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {names.links} ({names.key}, {names.columns}) "
            f"SELECT DISTINCT %s, %s, picked.*, {names.values} {picked} WHERE 1 = 1 ON CONFLICT DO NOTHING",
            [*link_params, *ids_params],
        )
        cursor.execute(
            f"INSERT INTO {names.outbox} ({names.key}, {names.event_columns}) "
            f"SELECT DISTINCT %s, %s, picked.*, %s, %s {picked}",
            [*event_params, *ids_params],
        )
        return cursor.rowcount


def _record_counted(names: _Names, ids_sql: str, params: list) -> int:
    """Links and events in one statement that sets each link's waiting count itself (PostgreSQL).

    Recording the events first and letting the outbox's trigger count them made the database lock
    and update every link a second time, and count them all again in the links counter: more than
    12 minutes when enabling a connector with a million users in scope. Here a new link is written
    with one event waiting and an existing one gains one, in the same upsert, and the trigger is
    told (for this statement only) that the events it sees are counted. Existing links are
    updated in id order, the order the triggers lock links in, so this waits for a worker's flush
    instead of deadlocking with it."""
    sql = (
        f"WITH picked(object_id) AS MATERIALIZED (SELECT DISTINCT * FROM ({ids_sql}) ids), "  # noqa: S608 - names from the models
        f"linked AS (INSERT INTO {names.links} ({names.key}, {names.columns}, waiting_events) "
        f"SELECT %s, %s, picked.object_id, {names.values}, 1 FROM picked LEFT JOIN {names.links} l "
        "ON l.connector_id = %s AND l.object_type = %s AND l.object_id = picked.object_id ORDER BY l.id "
        "ON CONFLICT (connector_id, object_type, object_id) "
        f"DO UPDATE SET waiting_events = {names.links}.waiting_events + 1) "
        f"INSERT INTO {names.outbox} ({names.key}, {names.event_columns}) "
        "SELECT %s, %s, picked.object_id, %s, %s FROM picked"
    )
    with transaction.atomic(), connection.cursor() as cursor, waiting.counted_by_the_caller(cursor):
        cursor.execute(sql, params)
        return cursor.rowcount


def _linked_connector_ids(object_type: str, object_ids: list[str]) -> set:
    return set(
        RemoteObject.objects.filter(object_type=object_type, object_id__in=object_ids)
        .exclude(remote_id="")
        .values_list("connector_id", flat=True)
    )


# A change of these reaches every connector whatever it maps: the status decides `active` and
# deprovisioning, whether or not a mapping names it.
_ALWAYS_SENT = frozenset({"status"})


def _user_mapping_reads(connectors: list[Connector]) -> dict[Any, frozenset[str]]:
    """Connector id -> the attribute keys its SCIM user mappings read (one query)."""
    sources: dict[Any, list[str]] = {connector.pk: [] for connector in connectors}
    for connector_id, source in AttributeMapping.objects.filter(
        connector__in=connectors, kind=MappingKind.SCIM_USER
    ).values_list("connector_id", "source"):
        sources[connector_id].append(source)
    return {pk: attributes_read(rows) | _ALWAYS_SENT for pk, rows in sources.items()}


def _record_for_connector(connector: Connector, ids: list[str], linked: set, reason: str) -> None:
    if connector.pk in linked:
        record_events(connector, ObjectType.USER, ids, reason)
        return
    in_scope = list(users_in_scope(connector).filter(pk__in=ids).values_list("pk", flat=True))
    if in_scope:
        record_events(connector, ObjectType.USER, in_scope, reason)


def record_user_change(user_ids: Iterable[Any], reason: str, *, attributes: Collection[str] | None = None) -> None:
    """Users changed (profile, status, deleted): tell every connector that has them or should.

    `attributes`: the attribute keys that changed (apps.directory.attributes: `title`, `manager`,
    `custom.<name>`...), or None when the change is not one of attributes (created, status,
    deleted). When given, only the connectors whose SCIM user mappings read one of them hear of it
    (apps.connectors.properties), and the users' reports where a mapping sends `manager.*` keys."""
    ids = [str(user_id) for user_id in user_ids]
    connectors = _active_connectors() if ids else []
    if not connectors:
        return  # the common case of a directory without provisioning costs one query
    changed = None if attributes is None else frozenset(attributes)
    reads = _user_mapping_reads(connectors) if changed is not None else {}
    linked = _linked_connector_ids(ObjectType.USER, ids)
    for connector in connectors:
        if changed is None or changed & reads[connector.pk]:
            _record_for_connector(connector, ids, linked, reason)
    if changed is not None and any(key.startswith("manager.") for read in reads.values() for key in read):
        _record_reports(connectors, reads, ids, changed)


def _record_reports(
    connectors: list[Connector], reads: dict[Any, frozenset[str]], ids: list[str], changed: frozenset[str]
) -> None:
    """The people reporting to the changed users, where a mapping sends their manager's name,
    username, email or employee number and that changed (asked only then: a write stays cheap)."""
    reports, shown = reports_affected(ids, changed)
    if not reports:
        return
    report_ids = [str(pk) for pk in reports]
    linked = _linked_connector_ids(ObjectType.USER, report_ids)
    for connector in connectors:
        if shown & reads[connector.pk]:
            _record_for_connector(connector, report_ids, linked, "user.manager_changed")


def record_group_change(group: Group, reason: str, *, member_ids: Iterable[Any] = ()) -> None:
    """A group changed (renamed, members added or removed, deleted) on the connectors it is pushed to."""
    connectors = _active_connectors()
    if not connectors:
        return
    members = [str(member_id) for member_id in member_ids]
    assigned = set(Assignment.objects.filter(group=group).values_list("connector_id", flat=True))
    linked = _linked_connector_ids(ObjectType.GROUP, [str(group.pk)])
    for connector in connectors:
        if connector.pk not in assigned and connector.pk not in linked:
            continue
        record_events(connector, ObjectType.GROUP, [group.pk], reason)
        if members:
            record_events(connector, ObjectType.USER, members, reason)


def record_groups_change(groups: list[Group], reason: str, *, member_ids: Iterable[Any] = ()) -> None:
    """record_group_change for several groups and the same members, with one question of which
    connectors provision and one of where the groups are assigned or linked (group rules moving one
    user between groups: a few queries whatever the number of groups)."""
    connectors = _active_connectors() if groups else []
    if not connectors:
        return
    members = [str(member_id) for member_id in member_ids]
    group_ids = [group.pk for group in groups]
    pushed = set(Assignment.objects.filter(group_id__in=group_ids).values_list("connector_id", "group_id"))
    pushed |= set(
        RemoteObject.objects.filter(object_type=ObjectType.GROUP, object_id__in=group_ids)
        .exclude(remote_id="")
        .values_list("connector_id", "object_id")
    )
    for connector in connectors:
        touched = [group_id for group_id in group_ids if (connector.pk, group_id) in pushed]
        if not touched:
            continue
        record_events(connector, ObjectType.GROUP, touched, reason)
        if members:
            record_events(connector, ObjectType.USER, members, reason)


def record_user_deletion(user: User) -> None:
    """Before a user row is deleted: every connector that has or should have the user deprovisions it."""
    record_user_change([user.pk], "user.delete")
    for membership in Membership.objects.filter(user=user).select_related("group"):
        record_group_change(membership.group, "group.member_deleted")


def record_group_deletion(group: Group) -> None:
    """Before a group is deleted: its assignments go with it, so its members' access is re-evaluated."""
    member_ids = list(Membership.objects.filter(group=group).values_list("user_id", flat=True))
    record_group_change(group, "group.delete", member_ids=member_ids)


def record_assignment_change(assignment: Assignment, reason: str) -> None:
    connector = assignment.connector
    if connector not in _active_connectors():
        return
    if assignment.user_id:
        record_events(connector, ObjectType.USER, [assignment.user_id], reason)
    else:
        member_ids = Membership.objects.filter(group_id=assignment.group_id).values("user_id")
        record_events_for(connector, ObjectType.USER, member_ids, reason)
        record_events(connector, ObjectType.GROUP, [assignment.group_id], reason)


def record_full_sync(connector: Connector, reason: str = "sync") -> int:
    """Every object the connector has or should have: users in scope, assigned groups, linked objects.

    The first PROVISIONING_FULL_SYNC_CHUNK objects are recorded now, in the caller's transaction;
    the rest in the background, a chunk per transaction (`continue_full_sync`), so a sync of a
    million users never holds a million links locked, nor the admin's request for a minute. A sync
    asked for while one is being recorded starts it again from the first object: what was recorded
    before the change may have been sent already. Returns the number of objects recorded now."""
    if not _provisions(connector):
        return 0
    now = timezone.now()
    recording, _ = FullSyncRecording.objects.update_or_create(
        connector=connector,
        defaults={"reason": reason, "object_type": ObjectType.USER, "after_id": None, "recorded": 0,
                  "started": now, "updated": now},
    )  # fmt: skip
    count = 0
    while recording.pk is not None and count < settings.PROVISIONING_FULL_SYNC_CHUNK:
        count += _record_chunk(connector, recording)  # a small connector's users and groups, all now
    if recording.pk is not None:
        continue_in_background(connector.pk)
    return count


def continue_full_sync(connector_id: Any, *, seconds: float) -> bool:
    """Record the connector's full sync a chunk per transaction for about `seconds`; True while
    more is left. A chunk and the recording's position commit together, so a task that dies
    resumes where the last chunk ended; two tasks never record the same chunk (row lock)."""
    deadline = time.monotonic() + seconds
    while True:  # at least one chunk per call, so every task moves it on
        with transaction.atomic():
            recording = (
                FullSyncRecording.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("connector__provisioning")
                .filter(connector_id=connector_id)
                .first()
            )
            if recording is None:  # finished, or another task is recording it
                return False
            if not _provisions(recording.connector):
                recording.delete()
                return False
            recorded_before = recording.recorded
            _record_chunk(recording.connector, recording)
        if recording.pk is None:
            return False
        _refresh_statistics_as_links_grow(recorded_before, recording.recorded)
        if time.monotonic() >= deadline:
            return True


def _refresh_statistics_as_links_grow(before: int, after: int) -> None:
    """ANALYZE the links each time the recording has doubled (PostgreSQL): a full sync that makes
    a million links anew outgrows the planner's statistics within seconds, and a chunk planned on
    "the connector has one link" joined its 10,000 objects with every link by nested loops (75 s a
    chunk at 970,000 links, growing with each chunk) until autovacuum caught up, or never where it
    is off. About ten of these for a million objects, each a sample of the table."""
    size = settings.PROVISIONING_FULL_SYNC_CHUNK
    if connection.vendor != "postgresql" or (before // size).bit_length() == (after // size).bit_length():
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(RemoteObject._meta.db_table)}")


def _provisions(connector: Connector) -> bool:
    return connector.enabled and connector.has_provisioning and connector.provisioning.enabled


def _full_sync_sources(connector: Connector, object_type: str) -> list[tuple[QuerySet, str]]:
    """The queries whose ids a full sync records for one object type, each with its id column."""
    linked = (RemoteObject.objects.filter(connector=connector, object_type=object_type), "object_id")
    if object_type == ObjectType.USER:
        return [(users_in_scope(connector), "pk"), linked]
    return [(Assignment.objects.filter(connector=connector, group__isnull=False), "group_id"), linked]


def _nth_id(query: QuerySet, column: str, n: int) -> Any:
    """The n-th smallest id of the query (an index range scan), or None if it has fewer."""
    return next(iter(query.order_by(column).values_list(column, flat=True)[n - 1 : n]), None)


def _record_chunk(connector: Connector, recording: FullSyncRecording) -> int:
    """The events of the next chunk: up to a chunk's worth of ids from each source after the
    recording's position, up to the smallest of the sources' chunk ends (so each source's ids
    before that end are all taken). Moves the position on, or deletes the recording when done."""
    size = settings.PROVISIONING_FULL_SYNC_CHUNK
    sources = _full_sync_sources(connector, recording.object_type)
    if recording.after_id is not None:
        sources = [(query.filter(**{f"{column}__gt": recording.after_id}), column) for query, column in sources]
    ends = [_nth_id(query, column, size) for query, column in sources]
    end = min((value for value in ends if value is not None), default=None)
    ids = [
        (query.filter(**{f"{column}__lte": end}) if end is not None else query).order_by().values(column)
        for query, column in sources
    ]
    count = record_events_for(connector, recording.object_type, ids[0].union(*ids[1:]), recording.reason)
    recording.recorded += count
    recording.updated = timezone.now()
    if end is not None:
        recording.after_id = end
    elif recording.object_type == ObjectType.USER:
        recording.object_type, recording.after_id = ObjectType.GROUP, None
    else:
        recording.delete()
        return count
    recording.save(update_fields=["recorded", "updated", "after_id", "object_type"])
    return count
