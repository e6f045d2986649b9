"""How many users a connector reaches: exact while counting is cheap, "about" beyond."""

import pytest

from apps.connectors import selectors
from apps.connectors import services as connector_services
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


def _connector():
    return connector_services.connector_create(actor=None, template="generic-scim", name="Scope App")


def test_the_count_is_exact_and_counts_a_user_reached_twice_once():
    connector = _connector()
    people = [UserFactory(username=f"scope{i}") for i in range(5)]
    UserFactory(username="outsider")
    connector_services.assignment_create(actor=None, connector=connector, user=people[0])
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(members=people[:3]))
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(members=people[2:]))

    count = selectors.users_in_scope_count(connector)

    assert (count.count, count.exact, str(count)) == (5, True, "5")
    assert selectors.scope_paths(connector) == 7  # 1 direct + 3 + 3 memberships
    in_scope = set(selectors.users_in_scope(connector).values_list("pk", flat=True))
    assert set(type(people[0]).objects.filter(selectors.users_in_scope_q(connector)).values_list("pk", flat=True)) == (
        in_scope
    )


def test_above_the_limit_the_count_is_an_estimate_shown_as_about(monkeypatch):
    connector = _connector()
    people = [UserFactory(username=f"wide{i}") for i in range(4)]
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(members=people))
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(members=people[:2]))
    monkeypatch.setattr(selectors, "SCOPE_EXACT_COUNT_LIMIT", 3)

    count = selectors.users_in_scope_count(connector)

    # Six ways in: the two people in both groups are counted twice.
    assert (count.count, count.exact, str(count)) == (6, False, "about 6")


def test_which_of_some_users_are_in_scope_agrees_with_the_scope():
    connector = _connector()
    other = _connector()
    direct, grouped, both, outsider, elsewhere = (UserFactory(username=f"among{i}") for i in range(5))
    connector_services.assignment_create(actor=None, connector=connector, user=direct)
    connector_services.assignment_create(actor=None, connector=connector, user=both)
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(members=[grouped, both]))
    GroupFactory(members=[outsider])  # a group assigned to no connector
    connector_services.assignment_create(actor=None, connector=other, group=GroupFactory(members=[elsewhere]))
    asked = [direct.pk, grouped.pk, both.pk, outsider.pk, elsewhere.pk]

    among = selectors.users_in_scope_among(connector, asked)

    assert among == {direct.pk, grouped.pk, both.pk}
    assert among == set(selectors.users_in_scope(connector).filter(pk__in=asked).values_list("pk", flat=True))
    assert selectors.users_in_scope_among(connector, [outsider.pk]) == set()
    assert selectors.users_in_scope_among(connector, []) == set()
