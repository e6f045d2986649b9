"""Equality filters on profile attributes, on PostgreSQL (JSON containment) and SQLite (json_each)."""

import pytest

from apps.directory import services
from apps.directory.custom_attributes import custom_attribute_create
from apps.directory.models import User
from apps.directory.profile_selectors import UnknownFilter, profile_filter_q
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    custom_attribute_create(actor=None, name="remote", type="boolean")
    custom_attribute_create(actor=None, name="badge", type="number")
    custom_attribute_create(actor=None, name="skills", multi_valued=True)
    boss = UserFactory(username="boss")
    services.user_create(
        actor=None,
        username="ann",
        title="VP Sales",
        manager=boss,
        phone_numbers=[{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0199", "type": "mobile"}],
        emails=[{"value": "Ann@Home.Example"}],
        custom_attributes={"remote": True, "badge": 42, "skills": ["go", "sql"]},
    )
    services.user_create(
        actor=None,
        username="bob",
        phone_numbers=[{"value": "+1 555 0200", "type": "work"}],
        custom_attributes={"remote": False, "badge": 7, "skills": ["sql"]},
    )
    return boss


def _names(key, value) -> list[str]:
    return sorted(User.objects.filter(profile_filter_q(key, value)).values_list("username", flat=True))


def test_filters_on_lists_custom_values_and_the_manager(people):
    assert _names("phone_numbers.value", "+1 555 0199") == ["ann"]
    assert _names("phone_numbers", "+1 555 0200") == ["bob"]
    assert _names("phone_numbers.type", "work") == ["ann", "bob"]
    assert _names("emails.value", "Ann@home.example") == ["ann"]  # the domain is compared in lower case
    assert _names("custom.remote", "true") == ["ann"]
    assert _names("custom.remote", False) == ["bob"]
    assert _names("custom.badge", "42") == ["ann"]
    assert _names("custom.skills", "sql") == ["ann", "bob"]
    assert _names("custom.skills", "go") == ["ann"]
    assert _names("custom.badge", "") == ["boss"]  # has no value
    assert _names("manager", str(people.pk)) == ["ann"]
    assert _names("title", "vp sales") == ["ann"]
    assert _names("employee_id", people.employee_id) == ["boss"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("custom.nothing", "x"), ("custom.badge", "many"), ("manager", "nope"), ("password", "x"), ("photos.colour", "x")],
)
def test_unknown_filters_are_refused(people, key, value):
    with pytest.raises(UnknownFilter) as caught:
        profile_filter_q(key, value)
    assert caught.value.key == key
