"""The whole profile over SCIM: discovery of the core, Enterprise and custom schemas, every
attribute read and written by POST, PUT, PATCH and Bulk, primaries, the manager reference."""

import copy

import pytest

from apps.audit.models import AuditEvent
from apps.directory import services
from apps.directory.models import CustomAttribute, User
from tests.factories import UserFactory
from tests.scim_server.conftest import (
    ENTERPRISE,
    USER_SCHEMA,
    assert_scim_error,
    make_scim_client,
)

pytestmark = pytest.mark.django_db

CUSTOM = "urn:ietf:params:scim:schemas:extension:idp-portal:2.0:User"


@pytest.fixture
def custom_attributes(db) -> list[CustomAttribute]:
    return [
        CustomAttribute.objects.create(name="badgeColour", label="Badge colour", type="enum", choices=["Red", "Blue"]),
        CustomAttribute.objects.create(name="floor", label="Floor", type="number"),
        CustomAttribute.objects.create(name="remote", label="Remote", type="boolean"),
        CustomAttribute.objects.create(name="skills", label="Skills", type="string", multi_valued=True),
        CustomAttribute.objects.create(name="startDate", label="Start date", type="date"),
        CustomAttribute.objects.create(name="nickname2", label="Second nickname", type="string"),
    ]


def full_profile(username: str, manager_id: str | None = None, **extra) -> dict:
    """What an HR system sends: every attribute the directory keeps."""
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE, CUSTOM],
        "userName": username,
        "externalId": f"hr-{username}",
        "name": {"formatted": "Ada King", "familyName": "King", "givenName": "Ada"},
        "displayName": "Ada King",
        "nickName": "Ada",
        "profileUrl": "https://people.example.com/ada",
        "title": "Principal Engineer",
        "userType": "Employee",
        "preferredLanguage": "en-GB, en;q=0.8",
        "locale": "en-GB",
        "timezone": "Europe/London",
        "active": True,
        "emails": [
            {"value": f"{username}@example.com", "type": "work", "primary": True},
            {"value": f"{username}@home.example.org", "type": "home", "primary": False},
        ],
        "phoneNumbers": [
            {"value": "+44 20 7946 0000", "type": "work", "primary": True},
            {"value": "+44 7700 900000", "display": "mobile (personal)", "type": "mobile", "primary": False},
        ],
        "photos": [{"value": "https://photos.example.com/ada.jpg", "type": "photo", "primary": True}],
        "addresses": [
            {
                "formatted": "1 Analytical Row\nLondon EC1A 1AA\nGB",
                "streetAddress": "1 Analytical Row",
                "locality": "London",
                "region": "Greater London",
                "postalCode": "EC1A 1AA",
                "country": "GB",
                "type": "work",
                "primary": True,
            },
            {"locality": "Oxford", "country": "GB", "type": "home", "primary": False},
        ],
        ENTERPRISE: {
            "employeeNumber": "E-1815",
            "costCenter": "CC-42",
            "organization": "Analytical Engines Ltd",
            "division": "Research",
            "department": "Engineering",
        },
        CUSTOM: {
            "badgeColour": "Blue",
            "floor": 3,
            "remote": True,
            "skills": ["math", "poetry"],
            "startDate": "1843-07-01",
            "nickname2": "Countess",
        },
    }
    if manager_id:
        body[ENTERPRISE]["manager"] = {"value": manager_id}
    body.update(extra)
    return body


def without_meta(document: dict) -> dict:
    document = copy.deepcopy(document)
    document.pop("meta", None)
    document.pop("id", None)
    document.pop("groups", None)
    return document


def expected_from(body: dict, manager: User | None = None, base: str = "http://testserver") -> dict:
    expected = copy.deepcopy(body)
    if manager is not None:
        expected[ENTERPRISE]["manager"] = {
            "value": str(manager.pk),
            "$ref": f"{base}/scim/v2/Users/{manager.pk}",
            "displayName": manager.display_name,
        }
    return expected


# --- Discovery ---------------------------------------------------------------------------------


def test_schemas_publish_the_whole_core_enterprise_and_custom_schemas(scim, custom_attributes):
    schemas = scim.get("Schemas").json()
    assert schemas["totalResults"] == len(schemas["Resources"]) == 7
    core = scim.get(f"Schemas/{USER_SCHEMA}").json()
    names = [attribute["name"] for attribute in core["attributes"]]
    assert names == [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "emails",
        "phoneNumbers",
        "photos",
        "addresses",
        "groups",
    ]
    by_name = {attribute["name"]: attribute for attribute in core["attributes"]}
    assert by_name["profileUrl"]["type"] == "reference" and by_name["profileUrl"]["referenceTypes"] == ["external"]
    assert "Europe/Paris" in by_name["timezone"]["canonicalValues"]
    for multi in ("emails", "phoneNumbers", "photos", "addresses"):
        subs = {sub["name"]: sub for sub in by_name[multi]["subAttributes"]}
        assert subs["primary"]["mutability"] == "readWrite" and subs["primary"]["returned"] == "default"
        assert by_name[multi]["multiValued"] is True
    address_subs = [sub["name"] for sub in by_name["addresses"]["subAttributes"]]
    assert address_subs[:6] == ["formatted", "streetAddress", "locality", "region", "postalCode", "country"]
    assert by_name["groups"]["mutability"] == "readOnly"

    enterprise = scim.get(f"Schemas/{ENTERPRISE}").json()["attributes"]
    assert [attribute["name"] for attribute in enterprise] == [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager",
    ]
    manager = {sub["name"]: sub for sub in enterprise[-1]["subAttributes"]}
    assert manager["$ref"]["referenceTypes"] == ["User"]
    assert manager["displayName"]["mutability"] == "readOnly"
    assert manager["value"]["mutability"] == "readWrite"

    custom = scim.get(f"Schemas/{CUSTOM}").json()
    assert custom["id"] == CUSTOM
    attributes = {attribute["name"]: attribute for attribute in custom["attributes"]}
    assert list(attributes) == ["badgeColour", "floor", "nickname2", "remote", "skills", "startDate"]
    assert attributes["badgeColour"]["type"] == "string"
    assert attributes["badgeColour"]["canonicalValues"] == ["Red", "Blue"]
    assert attributes["floor"]["type"] == "decimal" and attributes["remote"]["type"] == "boolean"
    assert attributes["skills"]["multiValued"] is True and attributes["floor"]["multiValued"] is False
    assert attributes["startDate"]["type"] == "string" and "YYYY-MM-DD" in attributes["startDate"]["description"]
    for attribute in attributes.values():
        assert (attribute["mutability"], attribute["returned"], attribute["uniqueness"]) == (
            "readWrite",
            "default",
            "none",
        )

    types = scim.get("ResourceTypes").json()
    assert types["totalResults"] == 2
    user_type = scim.get("ResourceTypes/User").json()
    assert user_type["schemaExtensions"] == [
        {"schema": ENTERPRISE, "required": False},
        {"schema": CUSTOM, "required": False},
    ]


def test_a_required_custom_attribute_makes_the_extension_required(scim, custom_attributes):
    CustomAttribute.objects.filter(name="floor").update(required=True)
    extensions = scim.get("ResourceTypes/User").json()["schemaExtensions"]
    assert {"schema": CUSTOM, "required": True} in extensions
    floor = next(a for a in scim.get(f"Schemas/{CUSTOM}").json()["attributes"] if a["name"] == "floor")
    assert floor["required"] is True


def test_without_custom_attributes_no_custom_schema_is_published(scim):
    assert CUSTOM not in {schema["id"] for schema in scim.get("Schemas").json()["Resources"]}
    assert scim.get("ResourceTypes/User").json()["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert_scim_error(scim.get(f"Schemas/{CUSTOM}"), 404)


# --- An HR system's full profile, written and read back unchanged ------------------------------


def test_hr_system_provisions_a_full_profile_and_reads_it_back_unchanged(scim, custom_attributes):
    boss = scim.post("Users", full_profile("grace.boss"))
    assert boss.status_code == 201, boss.content
    manager = User.objects.get(username="grace.boss")
    body = full_profile("ada.king", manager_id=str(manager.pk))
    created = scim.post("Users", body)
    assert created.status_code == 201, created.content
    document = created.json()
    expected = expected_from(body, manager)
    assert without_meta(document) == expected
    assert without_meta(scim.get(f"Users/{document['id']}").json()) == expected
    listed = scim.get("Users", filter='userName eq "ada.king"').json()["Resources"][0]
    assert without_meta(listed) == expected

    user = User.objects.get(pk=document["id"])
    assert (user.title, user.department, user.cost_center, user.manager_id) == (
        "Principal Engineer",
        "Engineering",
        "CC-42",
        manager.pk,
    )
    assert user.email == "ada.king@example.com"
    assert user.emails == [{"value": "ada.king@home.example.org", "type": "home", "primary": False}]
    assert user.custom_attributes["floor"] == 3 and user.custom_attributes["skills"] == ["math", "poetry"]

    # PUT of the same document changes nothing (no audit row beyond the create).
    again = scim.put(f"Users/{document['id']}", body)
    assert again.status_code == 200 and without_meta(again.json()) == expected
    assert AuditEvent.objects.filter(action="user.update", target_id=document["id"]).count() == 0

    # PUT without an attribute clears it (RFC 7644 §3.5.1), and the rest stays.
    smaller = copy.deepcopy(body)
    del smaller["phoneNumbers"], smaller["title"]
    del smaller[ENTERPRISE]["manager"], smaller[CUSTOM]["skills"]
    replaced = scim.put(f"Users/{document['id']}", smaller).json()
    assert without_meta(replaced) == expected_from(smaller)
    user.refresh_from_db()
    assert (user.phone_numbers, user.title, user.manager_id) == ([], "", None)
    assert "skills" not in user.custom_attributes


def test_bulk_provisions_managers_and_reports_by_bulk_id(scim, custom_attributes):
    boss = full_profile("bulk.boss")
    report = full_profile("bulk.report", emails=[{"value": "bulk.report@example.com", "type": "work", "primary": True}])
    report[ENTERPRISE]["manager"] = {"value": "bulkId:boss"}
    response = scim.post(
        "Bulk",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "report", "data": report},
                {"method": "POST", "path": "/Users", "bulkId": "boss", "data": boss},
                {
                    "method": "PATCH",
                    "path": "/Users/bulkId:report",
                    "data": {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "title", "value": "Analyst"}],
                    },
                },
            ],
        },
    )
    assert response.status_code == 200, response.content
    statuses = [int(operation["status"]) for operation in response.json()["Operations"]]
    assert sorted(statuses) == [200, 201, 201], response.json()
    saved = User.objects.select_related("manager").get(username="bulk.report")
    assert saved.manager.username == "bulk.boss" and saved.title == "Analyst"


# --- PATCH paths -------------------------------------------------------------------------------


@pytest.fixture
def ada(scim, custom_attributes) -> dict:
    response = scim.post("Users", full_profile("ada.king"))
    assert response.status_code == 201, response.content
    return response.json()


def _patch(scim, user_id: str, *operations: dict) -> dict:
    response = scim.patch_ops(f"Users/{user_id}", *operations)
    assert response.status_code == 200, response.content
    return response.json()


def test_patch_value_paths_on_multi_valued_attributes(scim, ada):
    user_id = ada["id"]
    document = _patch(
        scim,
        user_id,
        {"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+44 20 7946 1111"},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "ada@example.com"},
        {"op": "replace", "path": 'addresses[type eq "work"].locality', "value": "Cambridge"},
        {"op": "add", "path": 'phoneNumbers[type eq "fax"].value', "value": "+44 20 7946 2222"},
        {"op": "remove", "path": 'emails[type eq "home"]'},
    )
    assert [(p["value"], p["type"], p["primary"]) for p in document["phoneNumbers"]] == [
        ("+44 20 7946 1111", "work", True),
        ("+44 7700 900000", "mobile", False),
        ("+44 20 7946 2222", "fax", False),
    ]
    assert document["emails"] == [{"value": "ada@example.com", "type": "work", "primary": True}]
    assert document["addresses"][0]["locality"] == "Cambridge" and document["addresses"][1]["locality"] == "Oxford"
    user = User.objects.get(pk=user_id)
    assert user.email == "ada@example.com" and user.emails == []
    assert user.addresses[0]["locality"] == "Cambridge"


def test_a_new_primary_clears_the_others_and_two_primaries_are_refused(scim, ada):
    user_id = ada["id"]
    document = _patch(
        scim,
        user_id,
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555 0100", "type": "home", "primary": True}]},
    )
    assert [(p["value"], p["primary"]) for p in document["phoneNumbers"]] == [
        ("+44 20 7946 0000", False),
        ("+44 7700 900000", False),
        ("+1 555 0100", True),
    ]
    document = _patch(scim, user_id, {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].primary', "value": True})
    assert [p["primary"] for p in document["phoneNumbers"]] == [False, True, False]
    # The secondary email made primary becomes the company email, the old one a secondary.
    document = _patch(scim, user_id, {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True})
    assert document["emails"][0]["value"] == "ada.king@home.example.org" and document["emails"][0]["primary"]
    assert document["emails"][1] == {"value": "ada.king@example.com", "type": "work", "primary": False}
    assert User.objects.get(pk=user_id).email == "ada.king@home.example.org"

    two = [{"value": "+1 555 0101", "primary": True}, {"value": "+1 555 0102", "primary": True}]
    assert_scim_error(
        scim.patch_ops(f"Users/{user_id}", {"op": "add", "path": "phoneNumbers", "value": two}), 400, "invalidValue"
    )
    body = full_profile("two.primaries")
    body["emails"] = [{"value": "a@example.com", "primary": True}, {"value": "b@example.com", "primary": True}]
    assert_scim_error(scim.post("Users", body), 400, "invalidValue")
    body = full_profile("two.primaries")
    body["addresses"][1]["primary"] = True
    assert_scim_error(scim.put(f"Users/{user_id}", body), 400, "invalidValue")
    assert not User.objects.filter(username="two.primaries").exists()


def test_manager_by_value_by_string_by_ref_and_removed(scim, ada):
    boss = UserFactory(username="the.boss", display_name="The Boss")
    other = UserFactory(username="other.boss", display_name="Other Boss")
    path = f"{ENTERPRISE}:manager"
    document = _patch(scim, ada["id"], {"op": "add", "path": path, "value": {"value": str(boss.pk)}})
    assert document[ENTERPRISE]["manager"] == {
        "value": str(boss.pk),
        "$ref": f"http://testserver/scim/v2/Users/{boss.pk}",
        "displayName": "The Boss",
    }
    # Entra ID's form: the id as a plain string, and capitalised op names.
    document = _patch(scim, ada["id"], {"op": "Replace", "path": path, "value": str(other.pk)})
    assert document[ENTERPRISE]["manager"]["value"] == str(other.pk)
    assert document[ENTERPRISE]["manager"]["displayName"] == "Other Boss"
    document = _patch(
        scim,
        ada["id"],
        {"op": "replace", "path": path, "value": {"$ref": f"http://testserver/scim/v2/Users/{boss.pk}"}},
    )
    assert User.objects.get(pk=ada["id"]).manager_id == boss.pk
    document = _patch(scim, ada["id"], {"op": "replace", "path": f"{path}.value", "value": str(other.pk)})
    assert document[ENTERPRISE]["manager"]["value"] == str(other.pk)
    document = _patch(scim, ada["id"], {"op": "Remove", "path": path})
    assert "manager" not in document[ENTERPRISE]
    assert User.objects.get(pk=ada["id"]).manager_id is None


def test_the_company_email_keeps_its_type(scim, custom_attributes):
    body = full_profile("typed.email")
    body["emails"] = [{"value": "typed.email@home.example.org", "type": "home", "primary": True}]
    document = scim.post("Users", body).json()
    assert document["emails"] == [{"value": "typed.email@home.example.org", "type": "home", "primary": True}]


@pytest.mark.parametrize(
    "value",
    ["00000000-0000-0000-0000-000000000000", "not-an-id", {"value": "00000000-0000-0000-0000-000000000001"}],
)
def test_unknown_manager_is_400_invalid_value_and_nothing_changes(scim, ada, value):
    before = User.objects.get(pk=ada["id"])
    path = f"{ENTERPRISE}:manager"
    assert_scim_error(
        scim.patch_ops(f"Users/{ada['id']}", {"op": "add", "path": path, "value": value}), 400, "invalidValue"
    )
    body = full_profile("ada.king")
    body[ENTERPRISE]["manager"] = value if isinstance(value, dict) else {"value": value}
    assert_scim_error(scim.put(f"Users/{ada['id']}", body), 400, "invalidValue")
    assert User.objects.get(pk=ada["id"]).updated == before.updated


def test_a_user_cannot_be_their_own_manager(scim, ada):
    path = f"{ENTERPRISE}:manager"
    assert_scim_error(
        scim.patch_ops(f"Users/{ada['id']}", {"op": "add", "path": path, "value": ada["id"]}), 400, "invalidValue"
    )


def test_enterprise_and_custom_paths(scim, ada):
    document = _patch(
        scim,
        ada["id"],
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Research"},
        {"op": "Add", "value": {f"{ENTERPRISE}:costCenter": "CC-7", "title": "Fellow"}},
        {"op": "replace", "path": f"{CUSTOM}:floor", "value": 4},
        {"op": "add", "path": f"{CUSTOM}:skills", "value": ["chess"]},
        {"op": "remove", "path": f"{CUSTOM}:nickname2"},
        {"op": "replace", "path": f"{CUSTOM}:badgeColour", "value": "red"},
    )
    assert document[ENTERPRISE]["department"] == "Research" and document[ENTERPRISE]["costCenter"] == "CC-7"
    assert document["title"] == "Fellow"
    assert document[CUSTOM] == {
        "badgeColour": "Red",
        "floor": 4,
        "remote": True,
        "skills": ["math", "poetry", "chess"],
        "startDate": "1843-07-01",
    }
    user = User.objects.get(pk=ada["id"])
    assert user.custom_attributes["skills"] == ["math", "poetry", "chess"]
    assert_scim_error(
        scim.patch_ops(f"Users/{ada['id']}", {"op": "replace", "path": f"{CUSTOM}:floor", "value": "third"}),
        400,
        "invalidValue",
    )
    assert_scim_error(
        scim.patch_ops(f"Users/{ada['id']}", {"op": "replace", "path": f"{CUSTOM}:badgeColour", "value": "Green"}),
        400,
        "invalidValue",
    )
    assert_scim_error(
        scim.patch_ops(f"Users/{ada['id']}", {"op": "replace", "path": f"{CUSTOM}:nope", "value": "x"}),
        400,
        "invalidPath",
    )


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("timezone", "Mars/Olympus"),
        ("locale", "not a locale!"),
        ("profileUrl", "javascript:alert(1)"),
        ("photos", [{"value": "ftp://example.com/a.jpg"}]),
        ("emails", [{"value": "not-an-email", "primary": True}]),
    ],
)
def test_invalid_profile_values_are_400_invalid_value_naming_the_attribute(scim, ada, attribute, value):
    response = scim.patch_ops(f"Users/{ada['id']}", {"op": "replace", "path": attribute, "value": value})
    body = assert_scim_error(response, 400, "invalidValue")
    assert attribute in body["detail"]


def test_staff_profiles_stay_read_only_to_scim_tokens(scim, custom_attributes):
    staff = UserFactory(username="staff.admin")
    services.user_set_admin_role(actor=None, user=staff, role="admin")
    response = scim.patch_ops(f"Users/{staff.pk}", {"op": "replace", "path": "title", "value": "Pwned"})
    assert_scim_error(response, 403)
    assert User.objects.get(pk=staff.pk).title == ""
    body = full_profile("staff.admin")
    assert_scim_error(scim.put(f"Users/{staff.pk}", body), 403)
    trusted = make_scim_client("trusted", manages_staff=True)
    assert (
        trusted.patch_ops(f"Users/{staff.pk}", {"op": "replace", "path": "title", "value": "Admin"}).status_code == 200
    )


def test_a_patch_writes_and_audits_only_what_it_changes(scim, ada):
    User.objects.filter(pk=ada["id"]).update(
        phone_numbers=[{"value": "+1 555 0100", "type": "", "primary": False}]  # as a CSV import leaves it
    )
    _patch(scim, ada["id"], {"op": "replace", "path": "title", "value": "Fellow"})
    event = AuditEvent.objects.filter(action="user.update", target_id=ada["id"]).latest("id")
    assert event.before == {"title": "Principal Engineer"} and event.after == {"title": "Fellow"}
