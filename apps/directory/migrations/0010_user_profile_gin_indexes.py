"""PostgreSQL only: GIN indexes (jsonb_path_ops) on the profile's JSON lists and custom attributes.

SCIM and the API filter on `phoneNumbers.value`, `emails.value` and custom attributes by equality;
on PostgreSQL that is JSON containment (`phone_numbers @> '[{"value": "+1 555"}]'`), which a
`jsonb_path_ops` GIN index serves. SQLite has no such index: the same filters scan there.

`fastupdate = off`: with PostgreSQL's default, new entries wait in a pending list that every
search reads through until a VACUUM merges it; after a bulk provisioning run that made a
one-user filter take 2-11 ms instead of 0.1 ms (bench/profile_filters.py). Writing each entry
into the index at once costs a user write a little more and keeps filters steady.
"""

from django.db import migrations

INDEXED_COLUMNS = ("emails", "phone_numbers", "custom_attributes")


def _index_name(column: str) -> str:
    return f"directory_user_{column}_gin"


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in INDEXED_COLUMNS:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{_index_name(column)}" ON "directory_user" '
            f'USING gin ("{column}" jsonb_path_ops) WITH (fastupdate = off)'
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in INDEXED_COLUMNS:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{_index_name(column)}"')


class Migration(migrations.Migration):
    dependencies = [("directory", "0009_user_profile")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
