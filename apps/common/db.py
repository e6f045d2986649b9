"""A cursor for the few statements every sign-in runs, planned once per database connection.

On PostgreSQL, planning a join or a UNION costs the server several times more CPU than running
it (0.1-0.2 ms against 0.02-0.06 ms here). Django binds parameters on the client, so PostgreSQL
plans every statement afresh; this cursor binds them on the server instead and prepares each
statement the first time a connection runs it, after which the server only executes it. A
connection prepares nothing unless DATABASES OPTIONS set `prepare_threshold` (settings,
DB_PREPARED_STATEMENTS). Django's own queries are unchanged.

It is still Django's cursor wrapper: errors are Django's, and the statements show in
`connection.queries` and in tests that count queries. On other databases it is the usual cursor.
"""

import weakref
from functools import cache
from typing import Any

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
