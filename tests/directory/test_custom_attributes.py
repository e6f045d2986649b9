"""Custom attribute definitions: create, change (values rewritten or the change refused), delete
(values removed), each audited; and the registry that names them beside the built-in ones."""

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.common.errors import ApplicationError
from apps.directory import attributes, services
from apps.directory.custom_attributes import (
    CustomAttributeValuesUnfit,
    custom_attribute_create,
    custom_attribute_delete,
    custom_attribute_update,
)
from apps.directory.models import CustomAttribute, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor():
    return UserFactory(username="schema.admin", is_staff=True)


def test_create_validates_name_choices_and_uniqueness(actor):
    definition = custom_attribute_create(actor=actor, name="cost_code", label="Cost code")
    assert AuditEvent.objects.get(action="custom_attribute.create").after["name"] == "cost_code"
    assert definition.label == "Cost code"
    for name in ("Cost_Code", "1abc", "has space", "dash-ed", "id", ""):
        with pytest.raises(ValidationError) as caught:
            custom_attribute_create(actor=actor, name=name)
        assert "name" in caught.value.message_dict, name
    with pytest.raises(ValidationError) as caught:
        custom_attribute_create(actor=actor, name="tier", type="enum", choices=[])
    assert "choices" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        custom_attribute_create(actor=actor, name="tier", type="enum", choices=["Gold", "gold"])
    assert "twice" in caught.value.message_dict["choices"][0]
    with pytest.raises(ValidationError) as caught:
        custom_attribute_create(actor=actor, name="tier", type="colour")
    assert "type" in caught.value.message_dict


def test_name_is_immutable(actor):
    definition = custom_attribute_create(actor=actor, name="badge")
    with pytest.raises(ValidationError) as caught:
        custom_attribute_update(actor=actor, definition=definition, name="badge2")
    assert "cannot change" in caught.value.message_dict["name"][0]


def test_type_change_rewrites_values_that_fit(actor):
    definition = custom_attribute_create(actor=actor, name="floor")
    users = [services.user_create(actor=actor, username=f"u{n}", custom_attributes={"floor": str(n)}) for n in range(3)]
    custom_attribute_update(actor=actor, definition=definition, type="number", multi_valued=True)
    assert [User.objects.get(pk=u.pk).custom_attributes["floor"] for u in users] == [[0], [1], [2]]
    event = AuditEvent.objects.get(action="custom_attribute.update")
    assert event.before == {"type": "string", "multi_valued": False}
    assert event.after == {"type": "number", "multi_valued": True, "values_rewritten": 3}


def test_type_change_refused_when_a_value_does_not_fit(actor):
    definition = custom_attribute_create(actor=actor, name="floor")
    services.user_create(actor=actor, username="ok", custom_attributes={"floor": "3"})
    services.user_create(actor=actor, username="bad", custom_attributes={"floor": "mezzanine"})
    with pytest.raises(CustomAttributeValuesUnfit) as caught:
        custom_attribute_update(actor=actor, definition=definition, type="number")
    assert "bad" in caught.value.message and caught.value.extra["count"] == 1
    definition.refresh_from_db()
    assert definition.type == "string"
    assert User.objects.get(username="ok").custom_attributes == {"floor": "3"}


def test_shrinking_enum_or_going_single_valued_checks_values(actor):
    tier = custom_attribute_create(actor=actor, name="tier", type="enum", choices=["Gold", "Silver"])
    tags = custom_attribute_create(actor=actor, name="tags", multi_valued=True)
    services.user_create(actor=actor, username="gold", custom_attributes={"tier": "Gold", "tags": ["a", "b"]})
    with pytest.raises(ApplicationError):
        custom_attribute_update(actor=actor, definition=tier, choices=["Silver"])
    with pytest.raises(ApplicationError):
        custom_attribute_update(actor=actor, definition=tags, multi_valued=False)
    custom_attribute_update(actor=actor, definition=tier, choices=["GOLD", "Silver", "Bronze"])
    assert User.objects.get(username="gold").custom_attributes["tier"] == "GOLD"


def test_delete_removes_every_value(actor):
    definition = custom_attribute_create(actor=actor, name="badge", type="number")
    custom_attribute_create(actor=actor, name="keep")
    holder = services.user_create(actor=actor, username="holder", custom_attributes={"badge": 1, "keep": "x"})
    other = services.user_create(actor=actor, username="other", custom_attributes={"keep": "y"})
    assert custom_attribute_delete(actor=actor, definition=definition) == 1
    assert not CustomAttribute.objects.filter(name="badge").exists()
    assert User.objects.get(pk=holder.pk).custom_attributes == {"keep": "x"}
    assert User.objects.get(pk=other.pk).custom_attributes == {"keep": "y"}
    assert AuditEvent.objects.get(action="custom_attribute.delete").before["users_with_value"] == 1


def test_registry_names_built_in_and_custom_attributes(actor):
    custom_attribute_create(actor=actor, name="badge", label="Badge", type="number")
    keys = [attribute.key for attribute in attributes.all_attributes()]
    for key in ("title", "department", "manager", "manager.display_name", "phone_numbers", "custom.badge"):
        assert key in keys
    department = attributes.get_attribute("department")
    assert department.scim_urn_path == "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    badge = attributes.get_attribute("custom.badge")
    assert badge.scim_urn_path == f"{attributes.CUSTOM_SCHEMA}:badge" and badge.type == "number"
    assert attributes.get_attribute("custom.nothing") is None
    assert attributes.attribute_choices()["custom.badge"] == "Badge"


def test_user_value_reads_every_kind_of_key(actor):
    custom_attribute_create(actor=actor, name="badge", type="number")
    boss = services.user_create(actor=actor, username="boss", display_name="Big Boss", email="boss@example.com")
    user = services.user_create(
        actor=actor,
        username="worker",
        title="Welder",
        manager=boss,
        phone_numbers=[{"value": "1", "type": "home"}, {"value": "2", "type": "work", "primary": True}],
        addresses=[{"locality": "Paris", "country": "FR"}],
        custom_attributes={"badge": 9},
    )
    user = User.objects.select_related("manager").get(pk=user.pk)
    value = attributes.user_value
    assert value(user, "title") == "Welder"
    assert value(user, "department") is None
    assert value(user, "manager") == str(boss.pk)
    assert value(user, "manager.display_name") == "Big Boss"
    assert value(user, "manager.email") == "boss@example.com"
    assert value(user, "phone_numbers.value") == ["1", "2"]
    assert value(user, "phone_numbers.primary") == "2"
    assert value(user, "addresses.primary.locality") == "Paris"
    assert value(user, "custom.badge") == 9
    assert value(user, "custom.other") is None
    assert value(user, "id") == str(user.pk)
    assert value(boss, "manager.display_name") is None
