"""`field__any=[...]` finds exactly what `field__in=[...]` finds, on every database and field kind."""

import uuid

import pytest
from django.db import connection

from apps.directory.models import Group, Membership, User
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory():
    users = [UserFactory(username=f"any{index}") for index in range(4)]
    group = GroupFactory(name="Any group", members=users[:2])
    return users, group


def _same(model, field: str, values) -> list:
    expected = set(model.objects.filter(**{f"{field}__in": values}).values_list("pk", flat=True))
    found = set(model.objects.filter(**{f"{field}__any": values}).values_list("pk", flat=True))
    assert found == expected
    return sorted(found, key=str)


def test_uuid_keys_as_uuids_or_strings_and_integer_keys(directory):
    users, _group = directory
    assert len(_same(User, "pk", [user.pk for user in users[:3]])) == 3
    assert len(_same(User, "pk", [str(user.pk) for user in users[1:]] + [str(uuid.uuid4())])) == 3
    memberships = list(Membership.objects.values_list("pk", flat=True))
    assert len(_same(Membership, "pk", memberships[:1])) == 1


def test_foreign_keys_by_id_or_instance_and_text_columns(directory):
    users, group = directory
    assert len(_same(Membership, "user_id", [user.pk for user in users])) == 2
    assert len(_same(Membership, "user", users[:1])) == 1
    assert len(_same(Membership, "group_id", {group.pk})) == 2
    assert len(_same(User, "username", ["any0", "any3", "nobody"])) == 2


def test_an_empty_list_or_none_matches_nothing_and_a_queryset_still_works(directory):
    users, group = directory
    assert User.objects.filter(pk__any=[]).count() == 0
    assert len(_same(User, "pk", [None, users[0].pk])) == 1
    members = Membership.objects.filter(group=group).values("user_id")
    assert User.objects.filter(pk__any=members).count() == 2


def test_postgresql_binds_one_array_parameter(directory):
    users, _group = directory
    sql, params = User.objects.filter(pk__any=[user.pk for user in users]).query.sql_with_params()
    if connection.vendor == "postgresql":
        assert "= ANY(%s)" in sql and len(params) == 1
    else:
        assert " IN (" in sql and len(params) == len(users)
    assert Group.objects.filter(pk__any=[]).exists() is False
