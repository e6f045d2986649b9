"""apps.common.db: hot_path_cursor (server-side binding and prepared statements on PostgreSQL),
insert_row, insert_rows and batched_statements."""

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


# --- insert_row and batched_statements ------------------------------------------------------------


def test_insert_row_stores_what_save_stores():
    from apps.audit.models import AuditEvent
    from apps.common.db import insert_row
    from apps.directory.models import User

    user = User(username="inserted", email="inserted@example.com", first_name="Zoë", display_name="Zoë")
    user.set_unusable_password()
    insert_row(user)
    assert not user._state.adding
    stored = User.objects.get(pk=user.pk)
    for field in User._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(user, field.attname), field.name
    assert stored.created is not None and stored.updated is not None

    # A database-made id is not read back; the row is stored with its JSON as the ORM stores it.
    event = AuditEvent(action="test.insert", before={"a": [1, "ü"]}, after=None)
    insert_row(event)
    assert event.pk is None
    row = AuditEvent.objects.get(action="test.insert")
    assert row.before == {"a": [1, "ü"]} and row.after is None and row.created is not None


def test_insert_rows_stores_many_rows_as_bulk_create_would():
    from apps.audit.models import AuditEvent
    from apps.common.db import insert_rows

    events = [AuditEvent(action="test.many", before={"n": index, "s": "ü"}, after=None) for index in range(3)]
    with CaptureQueriesContext(connection) as captured:
        insert_rows(events)
        insert_rows([])  # nothing to write: no statement
    assert len(captured.captured_queries) == 1  # one executemany
    rows = list(AuditEvent.objects.filter(action="test.many").order_by("id"))
    assert [row.before for row in rows] == [{"n": index, "s": "ü"} for index in range(3)]
    assert all(row.after is None and row.created is not None for row in rows)


def _second_insert_clashes() -> None:
    from apps.common.db import batched_statements
    from apps.directory.models import Group

    with batched_statements():
        Group.objects.bulk_create([Group(name="batched")])
        Group.objects.bulk_create([Group(name="BATCHED")])  # the case-insensitive unique name
        Group.objects.filter(name="nothing").count()


@pytest.mark.parametrize("pipeline", [True, False])
def test_batched_statements_report_an_error_inside_the_block_and_roll_back(settings, pipeline):
    from django.db import IntegrityError, transaction

    from apps.directory.models import Group

    settings.DB_PIPELINE = pipeline
    with pytest.raises(IntegrityError), transaction.atomic():
        _second_insert_clashes()
    assert not Group.objects.filter(name__iexact="batched").exists()
    # The connection is usable afterwards.
    assert Group.objects.count() == 0


def test_batched_statements_share_one_round_trip_on_postgresql(settings):
    """Three statements, of which only the last is read: one wait for the server, not three."""
    if connection.vendor != "postgresql":
        pytest.skip("pipeline mode is PostgreSQL's")
    from apps.common.db import batched_statements
    from apps.directory.models import Group

    settings.DB_PIPELINE = True
    connection.ensure_connection()
    with batched_statements():
        assert connection.connection._pipeline is not None
        Group.objects.bulk_create([Group(name="one")])
        Group.objects.bulk_create([Group(name="two")])
        assert Group.objects.filter(name__in=["one", "two"]).count() == 2
    assert connection.connection._pipeline is None
    settings.DB_PIPELINE = False
    with batched_statements():
        assert connection.connection._pipeline is None
