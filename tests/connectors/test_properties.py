"""The profile in mappings: what the pickers offer, what a mapping may say, what each protocol sends."""

import pytest

from apps.connectors.attributes import MappingError, properties_for, validate_mapping
from apps.connectors.models import MappingKind
from apps.connectors.properties import attributes_read, text_values, user_values
from apps.connectors.selectors import mapping_properties
from apps.directory import services as directory
from apps.directory.custom_attributes import custom_attribute_create
from apps.oidc.claims import mapped_claims
from apps.provisioning.mapping import build_user_resource, user_properties
from tests.factories import UserFactory

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM, SAML, OIDC = MappingKind.SCIM_USER, MappingKind.SAML, MappingKind.OIDC


@pytest.mark.django_db
def test_every_picker_offers_the_profile_and_the_custom_attributes():
    custom_attribute_create(actor=None, name="badge", label="Badge number", type="string")
    for kind in (SCIM, SAML, OIDC):
        offered = mapping_properties(kind)
        for name in ("title", "department", "division", "organization", "cost_center", "employee_id", "manager",
                     "manager.email", "manager.display_name", "phone_numbers.primary", "addresses.primary.locality",
                     "preferred_language", "locale", "timezone", "custom.badge"):  # fmt: skip
            assert name in offered, (kind, name)
        assert offered["custom.badge"] == "Badge number (custom)"
    # The manager's id in the app exists only where an app's ids are known: outbound SCIM.
    assert "manager.app_id" in mapping_properties(SCIM)
    assert "manager.app_id" not in mapping_properties(SAML)
    assert "custom.badge" not in mapping_properties(MappingKind.SCIM_GROUP)


def _refused(*args, **kwargs) -> MappingError:
    with pytest.raises(MappingError) as caught:
        validate_mapping(*args, **kwargs)
    return caught.value


def test_a_custom_attribute_must_exist_to_be_mapped():
    validate_mapping(SAML, "custom.badge", "badge", custom_names={"badge"})
    validate_mapping(SCIM, "{custom.badge}-{username}", "nickName", custom_names={"badge"})
    error = _refused(SAML, "custom.gone", "badge", custom_names={"badge"})
    assert (error.field, error.message) == ("source", "There is no custom attribute 'gone'.")


def test_lists_of_entries_map_onto_their_own_attribute_whole():
    validate_mapping(SCIM, "phone_numbers", "phoneNumbers")
    validate_mapping(SCIM, "emails", "emails")
    validate_mapping(SCIM, "phone_numbers.primary", 'phoneNumbers[type eq "work"].value')
    error = _refused(SCIM, "phone_numbers", "phoneNumbers.value")
    assert error.field == "target" and "map it onto phoneNumbers itself" in error.message
    assert "not text" in _refused(SCIM, "{phone_numbers}", "nickName").message


def test_the_managers_display_name_is_read_only_in_scim_and_the_app_id_only_scim():
    validate_mapping(SCIM, "manager.app_id", f"{ENTERPRISE}:manager.value")
    error = _refused(SCIM, "manager.display_name", f"{ENTERPRISE}:manager.displayName")
    assert error.message == "manager.displayName is read-only: the app fills it in from manager.value."
    assert _refused(SAML, "manager.app_id", "manager").message == "manager.app_id can only be sent over SCIM."
    assert "manager.app_id" not in properties_for(OIDC)


def test_what_a_mapping_reads_is_what_the_directory_announces():
    assert attributes_read(["title"]) == {"title"}
    assert attributes_read(["phone_numbers.primary", "addresses.primary.locality"]) == {"phone_numbers", "addresses"}
    assert attributes_read(["manager.email"]) == {"manager", "manager.email"}
    assert attributes_read(["manager.app_id"]) == {"manager"}
    assert attributes_read(["{first_name}.{custom.badge}"]) == {"first_name", "custom.badge"}
    assert attributes_read(["display_name"]) == {"display_name", "first_name", "last_name"}


@pytest.fixture
def profiled(db):
    custom_attribute_create(actor=None, name="badge", label="Badge", type="string")
    boss = UserFactory(username="boss", email="boss@example.com", first_name="Bea", last_name="Boss")
    alice = UserFactory(username="alice", email="alice@example.com", first_name="Alice", last_name="Liddell")
    directory.user_update(
        actor=None,
        user=alice,
        title="Engineer",
        department="R&D",
        manager=boss,
        emails=[{"value": "alice@home.example", "type": "home"}],
        phone_numbers=[{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0199", "type": "mobile",
                                                                    "primary": True}],
        addresses=[{"street_address": "1 Main St", "locality": "Springfield", "postal_code": "12345",
                    "country": "US", "type": "work", "primary": True}],
        custom_attributes={"badge": "B-7"},
    )  # fmt: skip
    alice.refresh_from_db()
    return alice


def test_outbound_scim_builds_the_lists_and_the_enterprise_extension(profiled):
    mappings = [
        ("username", "userName"),
        ("email", 'emails[type eq "work"].value'),
        ("emails", "emails"),
        ("phone_numbers", "phoneNumbers"),
        ("addresses", "addresses"),
        ("title", "title"),
        ("department", f"{ENTERPRISE}:department"),
        ("manager.app_id", f"{ENTERPRISE}:manager.value"),
    ]
    resource = build_user_resource(user_properties(profiled, (), mappings, manager_app_id="remote-boss"), mappings)

    assert resource["emails"] == [
        {"type": "work", "value": "alice@example.com", "primary": True},
        {"value": "alice@home.example", "type": "home"},
    ]
    assert resource["phoneNumbers"] == [
        {"value": "+1 555 0100", "type": "work"},
        {"value": "+1 555 0199", "type": "mobile", "primary": True},
    ]
    assert resource["addresses"] == [
        {"streetAddress": "1 Main St", "locality": "Springfield", "postalCode": "12345", "country": "US",
         "type": "work", "primary": True},
    ]  # fmt: skip
    assert resource["title"] == "Engineer"
    assert resource[ENTERPRISE] == {"department": "R&D", "manager": {"value": "remote-boss"}}
    # Not linked in the app: no manager at all rather than an id the app does not know.
    unlinked = build_user_resource(user_properties(profiled, (), mappings), mappings)
    assert unlinked[ENTERPRISE] == {"department": "R&D"}


def test_saml_and_oidc_send_the_values(profiled):
    sources = ["phone_numbers", "phone_numbers.primary", "manager.email", "custom.badge", "addresses.primary.locality"]
    values = user_values(profiled, sources)
    assert text_values(values["phone_numbers"]) == ["+1 555 0100", "+1 555 0199"]
    assert values["phone_numbers.primary"] == "+1 555 0199"
    assert values["manager.email"] == "boss@example.com"
    assert values["custom.badge"] == "B-7"
    claims = mapped_claims(
        user_values(profiled, ["addresses", "title", "phone_numbers.primary"]),
        [("addresses", "address"), ("title", "job_title"), ("phone_numbers.primary", "phone_number")],
        ["openid", "profile", "address", "phone"],
    )
    assert claims["job_title"] == "Engineer"
    assert claims["address"] == {
        "street_address": "1 Main St", "locality": "Springfield", "postal_code": "12345", "country": "US"
    }  # fmt: skip
    assert claims["phone_number"] == "+1 555 0199"


def test_a_saml_assertion_carries_the_profile(profiled):
    from apps.connectors import services as connector_services
    from apps.saml_idp.attributes import subject_for

    connector = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="Profile app",
        enabled=True,
        sso={"sp_entity_id": "https://sp.example.com", "acs_urls": [{"url": "https://sp.example.com/acs"}]},
    )
    rows = [
        ("title", "jobTitle"),
        ("phone_numbers", "phones"),
        ("manager.email", "managerEmail"),
        ("custom.badge", "badge"),
        ("addresses.primary.locality", "city"),
        ("division", "division"),  # no value: left out
    ]
    connector_services.mappings_replace(
        actor=None, connector=connector, kind=SAML, rows=[{"source": s, "target": t} for s, t in rows]
    )
    subject = subject_for(connector, profiled)
    assert {attribute.name: attribute.values for attribute in subject.attributes} == {
        "jobTitle": ("Engineer",),
        "phones": ("+1 555 0100", "+1 555 0199"),
        "managerEmail": ("boss@example.com",),
        "badge": ("B-7",),
        "city": ("Springfield",),
    }
