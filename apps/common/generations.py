"""Caches of rarely changed settings that every process drops the moment a change is written.

Every sign-in used to read settings that change a few times a year (the sign-in policy, a
connector's SSO settings and which key signs for it), each a statement of its own. A cache per
process would save them, but the process would go on using what another one has just changed.
So each cache is tied to a *generation*: a row of `common_cachegeneration` whose token is
replaced, in the writing transaction itself, whenever a row of a table the cache reads is
inserted, updated or deleted. Database triggers replace it (made by `ensure_triggers` after every
`migrate`), so no writer can forget to: services, `QuerySet.update()`, data migrations and a
shell all count.

A request reads every generation's token once, at its first cached read, in one statement; a
value is used only when it was cached under the token read by this request, otherwise it is read
again from the database. A change committed before the request's read is therefore always seen:
there is no delay, no message to lose, and a restarted Redis or a rolled-back transaction (a
token is random, never reused) cannot bring back an old value. Outside a request (Celery, the
shell) nothing is cached. Values are shared between the threads of a process: cache immutable
values, or copies.
"""

import re
import secrets
import threading
from collections.abc import Callable, Hashable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, connections

from apps.common.db import hot_path_cursor

T = TypeVar("T")

TABLE = "common_cachegeneration"
_MAX_ENTRIES = 2048

# generation name -> the tables whose changes replace its token (registered by the caches' owners).
_watched: dict[str, set[str]] = {}

_NOT_IN_REQUEST: dict[str, str] = {}
_NOT_READ: dict[str, str] = {}
_tokens: ContextVar[dict[str, str]] = ContextVar("cache_generation_tokens", default=_NOT_IN_REQUEST)

_entries: dict[tuple[str, Hashable], tuple[str, Any]] = {}
_entries_lock = threading.Lock()


def watch(name: str, tables: Iterable[str]) -> None:
    """Declare that the cache `name` is read from `tables` (called from an AppConfig.ready())."""
    if not re.fullmatch(r"[a-z0-9_.]{1,40}", name):
        raise ValueError(f"Generation names are short lowercase words, not {name!r}.")
    tables = set(tables)
    for table in tables:
        # PostgreSQL cuts identifiers at 63 bytes: two triggers must never end up with one name.
        if len(_trigger_name(name, table, "_d")) > 63:
            raise ValueError(f"The trigger name for {name} on {table} is too long: shorten the generation name.")
    _watched.setdefault(name, set()).update(tables)


def watched() -> dict[str, set[str]]:
    return {name: set(tables) for name, tables in _watched.items()}


# --- Per request --------------------------------------------------------------------------------


def request_started(**kwargs: Any) -> None:
    """`request_started` receiver: this request reads the tokens afresh, once, when first needed."""
    _tokens.set(_NOT_READ)


def request_finished(**kwargs: Any) -> None:
    _tokens.set(_NOT_IN_REQUEST)


# Every token in one value, for a statement that reads them beside something else (on PostgreSQL
# the session load does: apps.common.sessions). `take_tokens` reads its result.
TOKENS_SUBQUERY = "(SELECT string_agg(name || '=' || token, ',') FROM common_cachegeneration)"


def wants_tokens() -> bool:
    """Whether this request has yet to read the tokens (and caches are on)."""
    return _tokens.get() is _NOT_READ and settings.SETTINGS_CACHE


def take_tokens(joined: str | None) -> None:
    _tokens.set(dict(part.split("=", 1) for part in joined.split(",")) if joined else {})


def read_tokens() -> dict[str, str]:
    """Every generation's current token (one statement)."""
    with hot_path_cursor() as cursor:
        cursor.execute(f"SELECT name, token FROM {TABLE}")  # noqa: S608 - a constant
        return dict(cursor.fetchall())


def _current_token(name: str) -> str | None:
    tokens = _tokens.get()
    if tokens is _NOT_IN_REQUEST or not settings.SETTINGS_CACHE:
        return None
    if tokens is _NOT_READ:
        tokens = read_tokens()
        _tokens.set(tokens)
    return tokens.get(name)


def forget_tokens() -> None:
    """After this request changed something cached: its next cached read reads the tokens again."""
    if _tokens.get() is not _NOT_IN_REQUEST:
        _tokens.set(_NOT_READ)


def cached(name: str, key: Hashable, load: Callable[[], T]) -> T:
    """`load()`'s value, from this process's cache when nothing `name` watches has changed since."""
    token = _current_token(name)
    if token is None:
        # Outside a request, or no generation row (a flushed test database): always fresh.
        return load()
    entry = _entries.get((name, key))
    if entry is not None and entry[0] == token:
        return entry[1]
    value = load()
    with _entries_lock:
        if len(_entries) >= _MAX_ENTRIES:
            # Unknown keys (any slug in a URL) must not grow the cache without bound.
            _entries.clear()
        _entries[(name, key)] = (token, value)
    return value


def clear_cache() -> None:
    with _entries_lock:
        _entries.clear()


# --- The triggers ---------------------------------------------------------------------------------

_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION common_cachegeneration_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE common_cachegeneration SET token = md5(random()::text || clock_timestamp()::text) WHERE name = TG_ARGV[0];
    RETURN NULL;
END $$
"""


def _trigger_name(name: str, table: str, event: str = "") -> str:
    return re.sub(r"[^a-z0-9_]", "_", f"cachegen_{name}_{table}{event}")


def ensure_triggers(using: str = "default", **kwargs: Any) -> None:
    """Create the generation rows and the triggers that replace their tokens (idempotent).

    Run after every `migrate` (post_migrate): SQLite rebuilds a table to alter it, which drops its
    triggers, so they are made again rather than only once in a migration.
    """
    database = connections[using]
    existing_tables = set(database.introspection.table_names())
    if TABLE not in existing_tables:
        return
    with database.cursor() as cursor:
        if database.vendor == "postgresql":
            cursor.execute(_POSTGRES_FUNCTION)
        for name, tables in sorted(_watched.items()):
            cursor.execute(
                f"INSERT INTO {TABLE} (name, token) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",  # noqa: S608
                [name, _new_token()],
            )
            for table in sorted(tables & existing_tables):
                quoted = database.ops.quote_name(table)
                if database.vendor == "postgresql":
                    cursor.execute(
                        f"CREATE OR REPLACE TRIGGER {_trigger_name(name, table)} AFTER INSERT OR UPDATE OR DELETE "
                        f"ON {quoted} FOR EACH ROW EXECUTE FUNCTION common_cachegeneration_bump('{name}')"
                    )
                    continue
                for event in ("INSERT", "UPDATE", "DELETE"):
                    # Names only: generation names are checked by watch(), tables come from the models.
                    trigger = _trigger_name(name, table, "_" + event[0].lower())
                    cursor.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {trigger} AFTER {event} ON {quoted} FOR EACH ROW BEGIN "  # noqa: S608
                        "UPDATE common_cachegeneration SET token = lower(hex(randomblob(16))) "
                        f"WHERE name = '{name}'; END"
                    )


def _new_token() -> str:
    return secrets.token_hex(16)


def tables_with_triggers(name: str) -> set[str]:
    """The tables whose changes replace `name`'s token now (for tests and checks)."""
    prefix = _trigger_name(name, "")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT trigger_name, event_object_table FROM information_schema.triggers")
        else:
            cursor.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        return {table for trigger, table in cursor.fetchall() if trigger.startswith(prefix)}
