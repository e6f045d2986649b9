"""hot_path_cursor: Django's cursor wrapper, with server-side binding and prepared statements on
PostgreSQL."""

import uuid

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from apps.common.db import hot_path_cursor

pytestmark = pytest.mark.django_db

_STATEMENT = "SELECT CAST(%(a)s AS INTEGER) + CAST(%(b)s AS INTEGER), CAST(%(a)s AS INTEGER), CAST(%(id)s AS TEXT)"


def _run(a: int, b: int) -> tuple:
    with hot_path_cursor() as cursor:
        cursor.execute(_STATEMENT, {"a": a, "b": b, "id": str(uuid.UUID(int=a))})
        return cursor.fetchone()


def test_results_are_counted_and_errors_are_djangos():
    with CaptureQueriesContext(connection) as captured:
        assert _run(2, 3) == (5, 2, str(uuid.UUID(int=2)))
    assert len(captured.captured_queries) == 1
    assert "AS INTEGER) + CAST(" in captured.captured_queries[0]["sql"]
    with pytest.raises(DatabaseError), hot_path_cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM django_session")


def test_postgresql_prepares_the_statement_at_its_first_run():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == 5

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
            return [row[0] for row in cursor.fetchall()]

    for n in range(3):
        with CaptureQueriesContext(connection) as captured:
            assert _run(n, 1)[0] == n + 1
        # Logged once prepared too (psycopg then keeps no query text for Django to read).
        assert "AS INTEGER) + CAST(" in captured.captured_queries[0]["sql"]
        assert sum("CAST($1 AS INTEGER) + CAST($2 AS INTEGER)" in statement for statement in prepared()) == 1
    # Django's own queries bind on the client and are never prepared.
    for _ in range(6):
        list(connection.introspection.table_names())
    assert all("CAST($1 AS INTEGER) + CAST($2 AS INTEGER)" in statement for statement in prepared())


def test_model_from_row_reads_what_the_orm_reads_for_the_session_user(django_assert_num_queries):
    """PortalBackend.get_user (every signed-in request) loads the user through model_from_row."""
    from apps.directory.models import User
    from apps.portal.backends import PortalBackend
    from tests.factories import UserFactory

    user = UserFactory(first_name="Zoë", last_name="O'Brien <&>")
    with django_assert_num_queries(1):
        loaded = PortalBackend().get_user(user.pk)
    expected = User.objects.get(pk=user.pk)
    for field in User._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name
    assert loaded.get_session_auth_hash() == expected.get_session_auth_hash()
    assert PortalBackend().get_user(uuid.uuid4()) is None
    User.objects.filter(pk=user.pk).update(status="suspended")
    assert PortalBackend().get_user(user.pk) is None
