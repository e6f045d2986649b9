"""PostgreSQL only: trigram indexes for the console's user search (part of a name, username or email).

Django turns `icontains` into `UPPER("col"::text) LIKE UPPER(%s)`; a GIN index on that same
expression with `gin_trgm_ops` serves it, so a search reads its matches instead of every user
(about 110 ms -> 3 ms at 100,000 users, bench/console_user_list.py). pg_trgm is a trusted
extension (PostgreSQL 13+): a database owner may create it without being a superuser. SQLite has
no equivalent and keeps scanning (about 60 ms at 100,000 users).
"""

from django.db import migrations

SEARCHED_COLUMNS = ("username", "email", "first_name", "last_name")


def _index_name(column: str) -> str:
    return f"directory_user_{column}_trgm"


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCHED_COLUMNS:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{_index_name(column)}" ON "directory_user" '
            f'USING gin (UPPER("{column}"::text) gin_trgm_ops)'
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in SEARCHED_COLUMNS:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{_index_name(column)}"')


class Migration(migrations.Migration):
    dependencies = [("directory", "0004_group_import_unknown_count")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
