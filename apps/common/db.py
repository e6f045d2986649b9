"""The hot paths' database access: a cursor for the few statements every sign-in runs, planned
once per database connection; `insert_row` and `insert_rows`, prepared INSERTs; `batched_statements`,
several statements in one round trip.

On PostgreSQL, planning a join or a UNION costs the server several times more CPU than running
it (0.1-0.2 ms against 0.02-0.06 ms here). Django binds parameters on the client, so PostgreSQL
plans every statement afresh; this cursor binds them on the server instead and prepares each
statement the first time a connection runs it, after which the server only executes it. A
connection prepares nothing unless DATABASES OPTIONS set `prepare_threshold` (settings,
DB_PREPARED_STATEMENTS). Django's own queries are unchanged.

The cursor is still Django's cursor wrapper: errors are Django's, and the statements show in
`connection.queries` and in tests that count queries. On other databases it is the usual cursor.
"""

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Model


class _DebugWrapper(CursorDebugWrapper):
    def execute(self, sql: str, params: Any = None) -> Any:
        # A prepared statement leaves psycopg no query text for Django to log: log the statement.
        with self.debug_sql(sql, params):
            return super(CursorDebugWrapper, self).execute(sql, params)


@cache
def _preparing_cursor_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        # Prepared at the first run, not after psycopg has counted `prepare_threshold` runs: its count
        # is an LRU of 100 statements shared with every other query, which a busy worker turns over
        # between two sign-ins. A connection without prepare_threshold prepares nothing.
        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: Any = None) -> Any:
            return super().execute(query, params, prepare=True, binary=binary)

    return PreparingCursor


def hot_path_cursor(using: str = DEFAULT_DB_ALIAS) -> CursorWrapper:
    """Use as `with hot_path_cursor() as cursor:`; write statements with %s or %(name)s placeholders."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = _preparing_cursor_class()(connection.connection)
    return _DebugWrapper(cursor, connection) if connection.queries_logged else connection.make_cursor(cursor)


@cache
def _insert_plan(model: type[Model], using: str) -> tuple[str, tuple]:
    fields = tuple(field for field in model._meta.concrete_fields if not (field.primary_key and field.db_returning))
    quote = connections[using].ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join("%s" for _ in fields)
    # Names come from the model; the only values are bound parameters.
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})", fields  # noqa: S608


def _insert_values(instance: Model, fields: tuple, using: str) -> list:
    # As save() makes them: each field's pre_save, then get_db_prep_save.
    connection = connections[using]
    return [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]


def insert_row(instance: Model, using: str = DEFAULT_DB_ALIAS) -> None:
    """INSERT a new row as one prepared statement, where save() would compile the same INSERT on
    every call (about 0.3 ms of a SCIM POST, bench/scim_server.py).

    Values are made as save() makes them (each field's pre_save, then get_db_prep_save), so
    timestamps and JSON are stored alike. Nothing is read back: a database-made id (an AutoField)
    stays unknown on the instance, so use it for rows made to be written, not used afterwards, or
    for models whose key is made in Python (a UUID). No model signals are sent.
    """
    sql, fields = _insert_plan(type(instance), using)
    with hot_path_cursor(using) as cursor:
        cursor.execute(sql, _insert_values(instance, fields, using))
    if instance.pk is not None:
        instance._state.adding = False
        instance._state.db = using


def insert_rows(instances: list[Model], using: str = DEFAULT_DB_ALIAS) -> None:
    """INSERT new rows of one model as `insert_row` does, all in one executemany (one pipeline on
    PostgreSQL), where bulk_create compiles a multi-row INSERT each time: 6 % of a provisioning
    worker's CPU went into compiling its delivery log's INSERTs. Nothing is read back."""
    if not instances:
        return
    sql, fields = _insert_plan(type(instances[0]), using)
    with hot_path_cursor(using) as cursor:
        cursor.executemany(sql, [_insert_values(instance, fields, using) for instance in instances])


def model_columns(model: type[Model], alias: str, using: str = DEFAULT_DB_ALIAS) -> str:
    """Every concrete column of `model` as `alias."column", ...`, in the order `model_from_row` reads."""
    quote = connections[using].ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


# Per database connection (each thread has its own), the ORM's converters of each column.
_column_converters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _converters(connection: BaseDatabaseWrapper, model: type[Model]) -> list[tuple[Any, list]]:
    per_model = _column_converters.setdefault(connection, {})
    if model not in per_model:
        columns = [field.get_col(model._meta.db_table) for field in model._meta.concrete_fields]
        per_model[model] = [
            (column, connection.ops.get_db_converters(column) + column.get_db_converters(connection))
            for column in columns
        ]
    return per_model[model]


def model_from_row(model: type[Model], values: tuple | list, using: str = DEFAULT_DB_ALIAS) -> Model:
    """A model instance from the values of its `model_columns`, converted as the ORM converts them."""
    connection = connections[using]
    converted = []
    for (column, converters), value in zip(_converters(connection, model), values, strict=True):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(using, [field.attname for field in model._meta.concrete_fields], converted)


@contextmanager
def batched_statements(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Send the statements run inside together: the connection waits for PostgreSQL only when a
    result is read, and once more at the end of the block.

    A directory write is an INSERT or UPDATE, its audit INSERT and the question "which connectors
    provision?": three round trips one after the other, or one in PostgreSQL's pipeline mode.
    Inside the block, a statement's error is raised when the next result is read or when the block
    ends, not by its own `execute`, and a row count is not known yet when `execute` returns. So the
    block holds only statements whose failure fails the whole transaction, never one caught in its
    own savepoint (`try: with atomic(): save()`), and none whose row count decides anything:
    Django's `save()` of an existing row reads it (and fails on an unknown count); the count that
    `update()` or `delete()` returns is meaningless inside, so ignore it (a locked row is there).
    On other databases, and with DB_PIPELINE off, statements run one by one as usual.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or not settings.DB_PIPELINE:
        yield
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield
