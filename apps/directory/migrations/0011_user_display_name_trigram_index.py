"""PostgreSQL only: a trigram index for the admin API's user search, which also matches the display
name (`/api/v1/users?search=`, apps.directory.selectors.user_list).

Without it the OR of the searched columns cannot be served by indexes alone: every search read the
whole table (1.4 s at a million users, bench/scale_reads.py). Same form as 0005's indexes.
"""

from django.db import migrations

INDEX = "directory_user_display_name_trgm"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "directory_user" USING gin (UPPER("display_name"::text) gin_trgm_ops)'
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [("directory", "0010_user_profile_gin_indexes")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
