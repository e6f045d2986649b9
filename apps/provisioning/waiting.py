# ruff: noqa: S608 - every statement here is DDL or SQL built from the models' table and column names
"""Which links have changes waiting: `RemoteObject.waiting_events`, kept by triggers on the outbox.

An object waits while its link is pending or one of its outbox events is not processed. Counting
the second kind meant a DISTINCT over every unprocessed event of the connector on each poll of the
console (a full sync of a million users leaves a million of them). Instead each link holds how many
of its events are unprocessed, changed by database triggers in the transaction that records,
settles or deletes events, so no writer can forget it; the links counter (apps.provisioning.counts)
then counts waiting links per connector like any other state.

On PostgreSQL the triggers are statement triggers over transition tables (a full sync's INSERT ...
SELECT of a million events updates each link once) that lock the links they change in id order
first: two transactions touching the same links wait for each other instead of deadlocking. On
SQLite they are row triggers. The two writers of many links at once, a full sync's recording and
a batch's outcomes, set the counts in their own statements and tell the triggers so
(`counted_by_the_caller`). After every migrate the column is checked against the outbox and
repaired where it differs (with writers held off), as apps.common.rowcounts recounts.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

from django.db import connections, transaction

from apps.provisioning.models import OutboxEvent, RemoteObject

_KEY = ("connector_id", "object_type", "object_id")
# Set transaction-locally around statements that write their links' waiting counts themselves
# (`counted_by_the_caller`): the INSERT and UPDATE triggers then leave the links alone.
COUNTED_SETTING = "idp_portal.waiting_counted"


@contextlib.contextmanager
def counted_by_the_caller(cursor: Any) -> Iterator[None]:
    """Inside: the outbox's triggers do not change the links' waiting counts; the statements run
    here change them themselves (PostgreSQL, inside a transaction). A full sync's recording and a
    batch's settled events each wrote every link twice otherwise: once for the change itself, once
    more in the trigger (with a lock pass before it, and the links counter's trigger after each).
    Not reset when a statement fails: the transaction (or savepoint) is rolled back, and the
    setting with it."""
    cursor.execute("SELECT set_config(%s, 'on', true)", [COUNTED_SETTING])
    yield
    cursor.execute("SELECT set_config(%s, 'off', true)", [COUNTED_SETTING])


def _tables(database: Any) -> tuple[str, str]:
    quote = database.ops.quote_name
    return quote(RemoteObject._meta.db_table), quote(OutboxEvent._meta.db_table)


def _postgres_function(links: str, event: str) -> str:
    key = ", ".join(_KEY)
    sources = []
    if event in ("INSERT", "UPDATE"):
        sources.append(f"SELECT {key}, 1 AS n FROM waiting_new WHERE processed_at IS NULL")
    if event in ("DELETE", "UPDATE"):
        sources.append(f"SELECT {key}, -1 AS n FROM waiting_old WHERE processed_at IS NULL")
    moved = f"SELECT {key}, SUM(n) AS n FROM ({' UNION ALL '.join(sources)}) events GROUP BY {key} HAVING SUM(n) <> 0"
    joined = " AND ".join(f"l.{column} = m.{column}" for column in _KEY)
    counted = f"IF current_setting('{COUNTED_SETTING}', true) = 'on' THEN RETURN NULL; END IF;"
    return f"""
CREATE OR REPLACE FUNCTION provisioning_waiting_{event.lower()}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {counted if event in ("INSERT", "UPDATE") else ""}
    PERFORM 1 FROM {links} l JOIN ({moved}) m ON {joined} ORDER BY l.id FOR NO KEY UPDATE OF l;
    UPDATE {links} l SET waiting_events = l.waiting_events + m.n FROM ({moved}) m WHERE {joined};
    RETURN NULL;
END $$
"""


def _postgres_triggers(cursor: Any, database: Any) -> None:
    links, outbox = _tables(database)
    transitions = {
        "INSERT": "NEW TABLE AS waiting_new",
        "DELETE": "OLD TABLE AS waiting_old",
        "UPDATE": "OLD TABLE AS waiting_old NEW TABLE AS waiting_new",
    }
    for event, transition in transitions.items():
        cursor.execute(_postgres_function(links, event))
        name = f"provisioning_waiting_{event.lower()}"
        cursor.execute(
            f"CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {outbox} REFERENCING {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
        cursor.execute(f"ALTER TABLE {outbox} ENABLE ALWAYS TRIGGER {name}")
    cursor.execute(
        "CREATE OR REPLACE FUNCTION provisioning_waiting_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN UPDATE {links} SET waiting_events = 0 WHERE waiting_events <> 0; RETURN NULL; END $$"
    )
    cursor.execute(
        f"CREATE OR REPLACE TRIGGER provisioning_waiting_truncate AFTER TRUNCATE ON {outbox} "
        "FOR EACH STATEMENT EXECUTE FUNCTION provisioning_waiting_truncate()"
    )
    cursor.execute(f"ALTER TABLE {outbox} ENABLE ALWAYS TRIGGER provisioning_waiting_truncate")


def _sqlite_triggers(cursor: Any, database: Any) -> None:
    links, outbox = _tables(database)

    def change(row: str, by: str) -> str:
        match = " AND ".join(f"{column} = {row}.{column}" for column in _KEY)
        return f"UPDATE {links} SET waiting_events = waiting_events + {by} WHERE {match};"

    triggers = {
        "insert": f"AFTER INSERT ON {outbox} FOR EACH ROW WHEN NEW.processed_at IS NULL BEGIN {change('NEW', '1')} END",
        "delete": f"AFTER DELETE ON {outbox} FOR EACH ROW WHEN OLD.processed_at IS NULL "
        f"BEGIN {change('OLD', '-1')} END",
        "update": (
            f"AFTER UPDATE OF processed_at ON {outbox} FOR EACH ROW "
            "WHEN (OLD.processed_at IS NULL) <> (NEW.processed_at IS NULL) BEGIN "
            f"{change('NEW', 'CASE WHEN NEW.processed_at IS NULL THEN 1 ELSE -1 END')} END"
        ),
    }
    for event, definition in triggers.items():
        cursor.execute(f"DROP TRIGGER IF EXISTS provisioning_waiting_{event}")
        cursor.execute(f"CREATE TRIGGER provisioning_waiting_{event} {definition}")


def repair(using: str = "default") -> int:
    """Set `waiting_events` from the outbox where it differs (writers to both tables held off);
    returns the number of links corrected."""
    database = connections[using]
    links, outbox = _tables(database)
    match = " AND ".join(f"o.{column} = {links}.{column}" for column in _KEY)
    unprocessed = f"(SELECT COUNT(*) FROM {outbox} o WHERE o.processed_at IS NULL AND {match})"
    with transaction.atomic(using=using), database.cursor() as cursor:
        if database.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {links}, {outbox} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"UPDATE {links} SET waiting_events = {unprocessed} WHERE waiting_events <> {unprocessed}")
        return max(cursor.rowcount, 0)


def ensure_triggers(using: str = "default", **kwargs: Any) -> None:
    """Make the outbox's triggers and repair the column (idempotent; post_migrate)."""
    database = connections[using]
    existing = set(database.introspection.table_names())
    if not {RemoteObject._meta.db_table, OutboxEvent._meta.db_table} <= existing:
        return
    with transaction.atomic(using=using), database.cursor() as cursor:
        if database.vendor == "postgresql":
            _postgres_triggers(cursor, database)
        else:
            _sqlite_triggers(cursor, database)
    repair(using)
