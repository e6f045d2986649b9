"""Exact row counts of large tables, kept by the database in the writing transaction.

A SCIM list must say how many users there are (RFC 7644 `totalResults`, exact), and the console
shows how many objects each connector has in each state. At a million rows a COUNT(*) reads the
whole table (or index) every time: about a hundred milliseconds per page. Instead, triggers append
one *delta row* per statement and bucket to `common_rowcount` (name, scope, part, n) in the
transaction that inserts, deletes or moves rows, and a count is the sum of a bucket's deltas.

- Deltas are appended, never updated in place: concurrent writers never wait on one hot counter
  row. A periodic task folds each bucket's deltas into one row (`compact_all`; a reader does it
  too when they pile up) with DELETE ... RETURNING in one statement, so a delta committed
  meanwhile is never lost nor counted twice.
- On PostgreSQL the triggers are statement triggers over transition tables: a COPY or an INSERT
  ... SELECT of a million rows writes one delta per bucket. They are ENABLEd ALWAYS, so a bulk load
  under `session_replication_role = replica` (bench/scale_data.py) keeps the counts too; TRUNCATE
  empties the counter. On SQLite (the embedded default) they are row triggers.
- Every `migrate` (post_migrate, also after a test flush) makes the triggers again and recounts
  every counter under a lock that holds writers off, so a counter is exact from its first day and
  any drift (a trigger dropped by hand) is repaired by the next deploy.
- A *ranked* counter also splits its rows into ranges of its key (bounds chosen at each recount,
  about RANK_STEP rows apart), each counted exactly: the row at position N in key order is then
  found by summing range counts and skipping at most a range's rows (`seek`), where an OFFSET
  would walk N index entries (half a million for the middle page of a million users).

A counter is declared by the app owning its table (`register`, from AppConfig.ready()) with SQL
expressions of a row for its scope (e.g. a connector id) and part (e.g. a status).
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import Field

TABLE = "common_rowcount"
BOUNDS = "common_rowcountbound"
# A ranked counter's ranges hold about this many rows when recounted (at most MAX_RANGES ranges).
RANK_STEP = 2048
MAX_RANGES = 1024
# The periodic task (common.compact_row_counts) folds deltas every half minute; a reader folds a
# scope's deltas itself only past this many (no worker running), so a read stays a read.
COMPACT_AFTER = 1000

# (vendor, row alias) -> an SQL expression of that row (text); the alias is NEW/OLD in a SQLite
# trigger, a transition table's alias on PostgreSQL.
Expression = Callable[[str, str], str]


def _empty(vendor: str, row: str) -> str:
    return "''"


@dataclass(frozen=True)
class Counter:
    name: str
    table: str
    scope: Expression
    part: Expression
    moves: bool  # whether an UPDATE can move a row between buckets (else only INSERT/DELETE count)
    rank_column: str | None = None  # ranked: the parts are ranges of this column (see seek)
    rank_type: str = ""  # its PostgreSQL type


_counters: dict[str, Counter] = {}


def register(
    name: str,
    table: str,
    *,
    scope: Expression = _empty,
    part: Expression = _empty,
    moves: bool = False,
    ranked_by: Field | None = None,
) -> None:
    """Count the rows of `table`, by bucket (scope, part), under `name` (called from AppConfig.ready()).

    `ranked_by` (a unique field that never changes, e.g. the primary key): the parts are ranges of
    it instead, so that `seek` finds a position in its order."""
    if not re.fullmatch(r"[a-z0-9_]{1,30}", name):
        raise ValueError(f"Counter names are short lowercase words, not {name!r}.")
    if ranked_by is None:
        _counters[name] = Counter(name, table, scope, part, moves)
        return
    column, rank_type = ranked_by.column, ranked_by.db_type(connection) or ""
    _counters[name] = Counter(name, table, _empty, _range_of(name, column), False, column, rank_type)


def _range_of(name: str, column: str) -> Expression:
    def expression(vendor: str, row: str) -> str:
        if vendor == "postgresql":
            return f"lpad({_range_function(name)}({row}.\"{column}\")::text, 5, '0')"
        bounds_below = f"SELECT COUNT(*) FROM {BOUNDS} b WHERE b.name = '{name}' AND b.bound <= {row}.\"{column}\""  # noqa: S608
        return f"printf('%05d', ({bounds_below}))"

    return expression


def _range_function(name: str) -> str:
    return f"rowcount_{name}_range"


def registered() -> dict[str, Counter]:
    return dict(_counters)


# --- Reading ------------------------------------------------------------------------------------------


def row_count(name: str) -> int:
    """The exact number of rows a counter without scopes or parts counts."""
    return sum(counts(name).values())


def table_total(table: str) -> int | None:
    """The exact number of rows of `table` when a counter without scopes counts all of it, else None."""
    for counter in _counters.values():
        if counter.table == table and counter.scope is _empty:
            return row_count(counter.name)
    return None


def counts(name: str, scopes: Iterable[str] | None = None) -> dict[tuple[str, str], int]:
    """(scope, part) -> rows, for every bucket of `name` (or of these scopes) that is not empty."""
    wanted = None if scopes is None else list(dict.fromkeys(scopes))
    if wanted == []:
        return {}
    sql = f"SELECT scope, part, SUM(n), COUNT(*) FROM {TABLE} WHERE name = %s"  # noqa: S608 - a constant
    params: list[Any] = [name]
    if wanted is not None:
        sql += f" AND scope IN ({', '.join(['%s'] * len(wanted))})"
        params += wanted
    with connection.cursor() as cursor:
        cursor.execute(sql + " GROUP BY scope, part", params)
        rows = cursor.fetchall()
    deltas: dict[str, int] = {}
    result = {}
    for scope, part, total, number in rows:
        deltas[scope] = deltas.get(scope, 0) + number - 1  # beyond one row per part
        if total:
            result[(scope, part)] = int(total)
    for scope, number in deltas.items():
        if number > COMPACT_AFTER:
            _compact(name, scope)
    return result


def seek(name: str, position: int) -> tuple[str | None, int] | None:
    """Where the row at `position` (from 0, in the ranked column's order) is: (the lowest value of
    its range, or None for the first range; how many rows of the range come before it), or None
    past the end. A page is then `WHERE column >= value ORDER BY column OFFSET skip`."""
    before = 0
    for (_, part), rows in sorted(counts(name).items()):
        if position < before + rows:
            found = int(part)
            break
        before += rows
    else:
        return None
    if found == 0:
        return None, position - before
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT bound FROM {BOUNDS} WHERE name = %s AND position = %s", [name, found])  # noqa: S608
        row = cursor.fetchone()
    # No bound: a recount is under way and replaced them; start from the first range.
    return (row[0], position - before) if row else (None, position)


def compact_all() -> int:
    """Fold every scope that has more than one delta per part (the periodic task); returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT name, scope FROM {TABLE} GROUP BY name, scope, part HAVING COUNT(*) > 1")  # noqa: S608
        folds = cursor.fetchall()
    for name, scope in folds:
        _compact(name, scope)
    return len(folds)


def _compact(name: str, scope: str) -> None:
    """Fold a scope's deltas into one row per part. DELETE ... RETURNING takes exactly the rows it
    removes, so a delta committed meanwhile stays for the next fold; on PostgreSQL one folder at a
    time per counter (a second skips: two would only wait on each other's rows)."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [f"rowcount:{name}:{scope}"])
            if not cursor.fetchone()[0]:
                return
        cursor.execute(f"DELETE FROM {TABLE} WHERE name = %s AND scope = %s RETURNING part, n", [name, scope])  # noqa: S608
        totals: dict[str, int] = {}
        for part, n in cursor.fetchall():
            totals[part] = totals.get(part, 0) + n
        rows = [(name, scope, part, n) for part, n in totals.items() if n]
        if rows:
            cursor.executemany(f"INSERT INTO {TABLE} (name, scope, part, n) VALUES (%s, %s, %s, %s)", rows)  # noqa: S608


# --- The triggers and the recount ----------------------------------------------------------------------


def _buckets_sql(counter: Counter, vendor: str, source: str, alias: str, sign: int) -> str:
    scope, part = counter.scope(vendor, alias), counter.part(vendor, alias)
    # Expressions from register(), never from input.
    return f"SELECT {scope} AS scope, {part} AS part, {sign} AS n FROM {source} {alias}"  # noqa: S608


def _postgres_function(counter: Counter, event: str) -> str:
    parts = []
    if event in ("INSERT", "UPDATE"):
        parts.append(_buckets_sql(counter, "postgresql", "rowcount_new", "r", 1))
    if event in ("DELETE", "UPDATE"):
        parts.append(_buckets_sql(counter, "postgresql", "rowcount_old", "r", -1))
    return f"""
CREATE OR REPLACE FUNCTION {_trigger_name(counter, event)}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} (name, scope, part, n)
    SELECT '{counter.name}', scope, part, SUM(n) FROM ({" UNION ALL ".join(parts)}) moved
    GROUP BY scope, part HAVING SUM(n) <> 0;
    RETURN NULL;
END $$
"""  # noqa: S608 - names and expressions from register()


_POSTGRES_TRUNCATE = f"""
CREATE OR REPLACE FUNCTION rowcount_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} WHERE name = TG_ARGV[0];
    RETURN NULL;
END $$
"""  # noqa: S608 - a constant


def _trigger_name(counter: Counter, event: str) -> str:
    return f"rowcount_{counter.name}_{event[0].lower()}"


def _events(counter: Counter) -> tuple[str, ...]:
    return ("INSERT", "DELETE", "UPDATE") if counter.moves else ("INSERT", "DELETE")


def _postgres_triggers(cursor: Any, database: Any, counter: Counter) -> None:
    table = database.ops.quote_name(counter.table)
    cursor.execute(_POSTGRES_TRUNCATE)
    for event in _events(counter):
        cursor.execute(_postgres_function(counter, event))
        transition = {
            "INSERT": "NEW TABLE AS rowcount_new",
            "DELETE": "OLD TABLE AS rowcount_old",
            "UPDATE": "OLD TABLE AS rowcount_old NEW TABLE AS rowcount_new",
        }[event]
        name = _trigger_name(counter, event)
        cursor.execute(
            f"CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
        cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")
    name = _trigger_name(counter, "TRUNCATE")
    cursor.execute(
        f"CREATE OR REPLACE TRIGGER {name} AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION rowcount_truncated('{counter.name}')"
    )
    cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")


def _sqlite_triggers(cursor: Any, database: Any, counter: Counter) -> None:
    table = database.ops.quote_name(counter.table)

    def delta(row: str, sign: int) -> str:
        scope, part = counter.scope("sqlite", row), counter.part("sqlite", row)
        return f"INSERT INTO {TABLE} (name, scope, part, n) VALUES ('{counter.name}', {scope}, {part}, {sign});"  # noqa: S608

    bodies = {"INSERT": ("", delta("NEW", 1)), "DELETE": ("", delta("OLD", -1))}
    if counter.moves:
        moved = " OR ".join(
            f"{expression('sqlite', 'OLD')} IS NOT {expression('sqlite', 'NEW')}"
            for expression in (counter.scope, counter.part)
        )
        bodies["UPDATE"] = (f" WHEN {moved}", delta("OLD", -1) + " " + delta("NEW", 1))
    for event, (when, body) in bodies.items():
        name = _trigger_name(counter, event)
        # Dropped first: a changed expression must replace the old trigger.
        cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        cursor.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW{when} BEGIN {body} END")


def recount(counter: Counter, using: str = "default") -> None:
    """Replace a counter's deltas by a count of its table, with writers held off (PostgreSQL: a lock
    that conflicts with every write and lets reads go on; SQLite: its one writer)."""
    database = connections[using]
    table = database.ops.quote_name(counter.table)
    with transaction.atomic(using=using), database.cursor() as cursor:
        if database.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {TABLE} WHERE name = %s", [counter.name])  # noqa: S608
        if counter.rank_column:
            _choose_ranges(cursor, database, counter)
        # With parameters, a literal % is written %% (SQLite's printf in a ranged counter's expression).
        scope, part = (
            expression(database.vendor, "r").replace("%", "%%") for expression in (counter.scope, counter.part)
        )
        cursor.execute(
            f"INSERT INTO {TABLE} (name, scope, part, n) "  # noqa: S608 - names from the models and register()
            f"SELECT %s, scope, part, COUNT(*) FROM (SELECT {scope} AS scope, {part} AS part FROM {table} r) counted "
            "GROUP BY scope, part",
            [counter.name],
        )


def _choose_ranges(cursor: Any, database: Any, counter: Counter) -> None:
    """Bounds RANK_STEP rows apart in the ranked column's order (at most MAX_RANGES ranges), and on
    PostgreSQL the function that maps a value to its range (width_bucket: a binary search)."""
    table, column = database.ops.quote_name(counter.table), database.ops.quote_name(counter.rank_column)
    cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - names from the models
    step = max(RANK_STEP, -(-cursor.fetchone()[0] // MAX_RANGES))
    cursor.execute(
        f"SELECT CAST({column} AS TEXT) FROM (SELECT {column}, ROW_NUMBER() OVER (ORDER BY {column}) AS n "  # noqa: S608
        f"FROM {table}) ranked WHERE n > 1 AND (n - 1) %% %s = 0 ORDER BY n",
        [step],
    )
    bounds = [row[0] for row in cursor.fetchall()]
    cursor.execute(f"DELETE FROM {BOUNDS} WHERE name = %s", [counter.name])  # noqa: S608
    cursor.executemany(
        f"INSERT INTO {BOUNDS} (name, position, bound) VALUES (%s, %s, %s)",  # noqa: S608
        [(counter.name, position, bound) for position, bound in enumerate(bounds, start=1)],
    )
    if database.vendor == "postgresql":
        _postgres_range_function(cursor, counter, bounds)


def _postgres_range_function(cursor: Any, counter: Counter, bounds: list[str]) -> None:
    kind = counter.rank_type
    values = ", ".join("'" + bound.replace("'", "''") + "'" for bound in bounds)
    body = f"SELECT width_bucket(value, ARRAY[{values}]::{kind}[])" if bounds else "SELECT 0"
    cursor.execute(
        f"CREATE OR REPLACE FUNCTION {_range_function(counter.name)}(value {kind}) RETURNS integer "
        f"LANGUAGE sql IMMUTABLE AS $$ {body} $$"
    )


def ensure_triggers(using: str = "default", **kwargs: Any) -> None:
    """Make every counter's triggers and recount it (idempotent; post_migrate, like
    apps.common.generations: SQLite drops a table's triggers when a migration rebuilds it)."""
    database = connections[using]
    existing = set(database.introspection.table_names())
    if TABLE not in existing:
        return
    for counter in sorted(_counters.values(), key=lambda counter: counter.name):
        if counter.table not in existing:
            continue
        with transaction.atomic(using=using), database.cursor() as cursor:
            if database.vendor == "postgresql":
                if counter.rank_column:
                    _postgres_range_function(cursor, counter, [])  # replaced by the recount below
                _postgres_triggers(cursor, database, counter)
            else:
                _sqlite_triggers(cursor, database, counter)
            recount(counter, using)


def recount_all(using: str = "default") -> None:
    """Recount every counter (what ensure_triggers does after making the triggers)."""
    existing = set(connections[using].introspection.table_names())
    for counter in sorted(_counters.values(), key=lambda counter: counter.name):
        if counter.table in existing:
            recount(counter, using)
