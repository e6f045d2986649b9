"""Directory reads: case-insensitive lookups, filters, and a query count that does not grow with the page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.api.serializers import UserOutputSerializer
from apps.directory import selectors
from apps.directory.models import UserStatus
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    """A small, fully specified directory (no random names, so searches are deterministic)."""
    alice = UserFactory(
        username="Alice", email="Alice@Example.com", first_name="Alice", last_name="Liddell", employee_id="E100"
    )
    bob = UserFactory(
        username="bob", email="bob@example.com", first_name="Robert", last_name="Paulson", employee_id="E200"
    )
    carol = UserFactory(
        username="carol",
        email="carol@corp.example.org",
        first_name="Carol",
        last_name="Danvers",
        display_name="Captain Marvel",
        employee_id="E300",
        status=UserStatus.SUSPENDED,
    )
    dave = UserFactory(
        username="dave", email="", first_name="Dave", last_name="Bowman", employee_id="E400", status=UserStatus.STAGED
    )
    engineering = GroupFactory(name="Engineering", members=[alice, bob])
    sales = GroupFactory(name="Sales", members=[carol])
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "engineering": engineering, "sales": sales}


def _names(users) -> list[str]:
    return [user.username for user in users]


@pytest.mark.parametrize("query", ["alice", "ALICE", "Alice", "aLiCe"])
def test_user_get_by_username_is_case_insensitive(people, query):
    assert selectors.user_get_by_username(query) == people["alice"]


def test_user_get_by_username_unknown_is_none(people):
    assert selectors.user_get_by_username("alic") is None
    assert selectors.user_get_by_username("") is None


def test_user_get_by_email_is_case_insensitive(people):
    assert selectors.user_get_by_email("alice@example.COM") == people["alice"]
    assert selectors.user_get_by_email("") is None
    assert selectors.user_get_by_email("nobody@example.com") is None


def test_user_list_without_filters_is_everyone_by_username(people):
    assert _names(selectors.user_list()) == ["Alice", "bob", "carol", "dave"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"username": "alice"}, ["Alice"]),
        ({"username": "BOB"}, ["bob"]),
        ({"username": "bo"}, []),
        ({"email": "ALICE@example.com"}, ["Alice"]),
        ({"email": "carol@CORP.example.org"}, ["carol"]),
        ({"email": "example.com"}, []),
        ({"status": "active"}, ["Alice", "bob"]),
        ({"status": "suspended"}, ["carol"]),
        ({"status": "staged"}, ["dave"]),
        ({"group": "engineering"}, ["Alice", "bob"]),
        ({"group": "SALES"}, ["carol"]),
        ({"group": "Nobody"}, []),
        ({"search": "LIDDELL"}, ["Alice"]),
        ({"search": "rob"}, ["bob"]),
        ({"search": "marvel"}, ["carol"]),
        ({"search": "corp.example"}, ["carol"]),
        ({"search": "example"}, ["Alice", "bob", "carol"]),
        ({"search": "E400"}, ["dave"]),
        ({"search": "E40"}, []),
        ({"search": "a", "status": "active", "group": "Engineering"}, ["Alice", "bob"]),
        ({"search": "alice", "status": "suspended"}, []),
    ],
)
def test_user_list_filters(people, filters, expected):
    assert _names(selectors.user_list(**filters)) == expected


def test_user_list_filters_by_group_id(people):
    assert _names(selectors.user_list(group=str(people["engineering"].pk))) == ["Alice", "bob"]
    assert _names(selectors.user_list(group=str(people["sales"].pk))) == ["carol"]


def test_user_list_group_filter_does_not_duplicate_users_in_many_groups(people):
    GroupFactory(name="Everyone", members=[people["alice"], people["bob"], people["carol"]])
    assert _names(selectors.user_list(group="everyone")) == ["Alice", "bob", "carol"]
    assert _names(selectors.user_list()) == ["Alice", "bob", "carol", "dave"]


def test_user_list_prefetches_groups(people):
    users = {user.username: user for user in selectors.user_list()}
    assert [group.name for group in users["Alice"].groups.all()] == ["Engineering"]
    assert list(users["dave"].groups.all()) == []


def test_group_exists_by_id_or_name(people):
    assert selectors.group_exists(str(people["sales"].pk))
    assert selectors.group_exists("sales")
    assert not selectors.group_exists("marketing")


def test_group_members_and_ids(people):
    engineering = people["engineering"]
    assert _names(selectors.group_members(engineering)) == ["Alice", "bob"]
    assert set(selectors.group_member_ids(engineering)) == {people["alice"].pk, people["bob"].pk}


def test_group_list_filters_and_member_count(people):
    counts = {group.name: group.member_count for group in selectors.group_list()}
    assert counts == {"Engineering": 2, "Sales": 1}
    assert [group.name for group in selectors.group_list(name="SALES")] == ["Sales"]
    assert [group.name for group in selectors.group_list(search="engin")] == ["Engineering"]
    by_member = list(selectors.group_list(member=str(people["alice"].pk)))
    assert [(group.name, group.member_count) for group in by_member] == [("Engineering", 2)]


def _serialized_user_page_queries() -> tuple[int, list[dict]]:
    with CaptureQueriesContext(connection) as captured:
        data = UserOutputSerializer(selectors.user_list()[:50], many=True).data
    return len(captured.captured_queries), data


def _make_users_with_groups(count: int, groups: list) -> None:
    for index in range(count):
        user = UserFactory(first_name="Pat", last_name=f"Number{index}")
        for group in groups[index % 2 :: 2]:
            group.members.add(user)


def test_user_list_page_runs_a_constant_number_of_queries():
    groups = [GroupFactory(name=f"Team {index}") for index in range(4)]
    _make_users_with_groups(3, groups)
    few_queries, few = _serialized_user_page_queries()
    assert len(few) == 3

    _make_users_with_groups(27, groups)
    many_queries, many = _serialized_user_page_queries()

    assert len(many) == 30
    assert all(len(item["groups"]) == 2 for item in many)
    assert many_queries == few_queries
    # One query for the users, one for all their groups.
    assert many_queries <= 2


def test_user_list_page_query_budget(django_assert_max_num_queries):
    groups = [GroupFactory(name=f"Squad {index}") for index in range(3)]
    _make_users_with_groups(30, groups)

    with django_assert_max_num_queries(2):
        data = UserOutputSerializer(selectors.user_list(), many=True).data

    assert len(data) == 30
