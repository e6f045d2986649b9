"""Entra ID and Okta provisioning sessions over real HTTP on loopback: the request sequences their
documentation shows for users with Enterprise User attributes and a manager, each user read back
after every step and compared with what was sent."""

import copy

import httpx2
import pytest

from apps.directory.models import User, UserStatus
from tests.scim_server.conftest import ENTERPRISE, PATCH_OP, USER_SCHEMA, make_scim_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JSON = {"Content-Type": "application/scim+json"}


@pytest.fixture
def http(live_server):
    token = make_scim_client("provisioning-session")
    client = httpx2.Client(
        base_url=f"{live_server.url}/scim/v2",
        headers={"Authorization": f"Bearer {token.secret}"},
        timeout=30,
    )
    yield client
    client.close()


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text[:1000]
    return response.json() if response.content else {}


def _lookup(http, user_name: str) -> dict:
    return _ok(http.get("/Users", params={"filter": f'userName eq "{user_name}"', "startIndex": 1, "count": 100}))


def _patch(http, user_id: str, *operations: dict) -> dict:
    return _ok(
        http.patch(f"/Users/{user_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}, headers=JSON)
    )


def _comparable(document: dict) -> dict:
    document = copy.deepcopy(document)
    for key in ("meta", "groups", "id"):
        document.pop(key, None)
    return document


def _read_back(http, user_id: str, expected: dict) -> dict:
    document = _ok(http.get(f"/Users/{user_id}"))
    assert _comparable(document) == expected
    assert document["meta"]["location"].endswith(f"/Users/{user_id}")
    return document


# --- Entra ID ----------------------------------------------------------------------------------


def _entra_create(user_name: str, given: str, family: str, enterprise: dict) -> dict:
    """Entra ID's create request (its SCIM protocol compliance guide), with the Enterprise User
    attributes its default attribute mappings send."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": f"aad-{user_name}",
        "userName": user_name,
        "active": True,
        "displayName": f"{given} {family}",
        "title": "Engineer",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "roles": [],
        ENTERPRISE: enterprise,
    }


def test_entra_id_provisioning_session(http):
    # The manager first: lookup, then create.
    assert _lookup(http, "mgr@contoso.example")["totalResults"] == 0
    manager_body = _entra_create("mgr@contoso.example", "Megan", "Bowen", {"department": "Engineering"})
    manager = _ok(http.post("/Users", json=manager_body, headers=JSON), 201)
    expected_manager = {key: value for key, value in manager_body.items() if key not in ("meta", "roles")}
    _read_back(http, manager["id"], expected_manager)

    # The report: lookup by userName, create with the Enterprise extension, lookup again.
    user_name = "alex@contoso.example"
    assert _lookup(http, user_name) == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "itemsPerPage": 0,
        "startIndex": 1,
        "Resources": [],
    }
    enterprise = {"employeeNumber": "1001", "department": "Engineering", "costCenter": "CC-100", "division": "R&D"}
    body = _entra_create(user_name, "Alex", "Wilber", enterprise)
    created = _ok(http.post("/Users", json=body, headers=JSON), 201)
    user_id = created["id"]
    expected = {key: value for key, value in body.items() if key not in ("meta", "roles")}
    assert _comparable(created) == expected
    found = _lookup(http, user_name)
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == user_id
    _read_back(http, user_id, expected)

    # Update User [Multi-valued properties] and [Single-valued properties], as Entra sends them.
    _patch(
        http,
        user_id,
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alex.w@contoso.example"},
        {"op": "Replace", "path": "name.familyName", "value": "Wilber-Smith"},
        {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 425 555 0100"},
        {"op": "Add", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Microsoft Way"},
        {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Research"},
        {"op": "Add", "value": {"title": "Senior Engineer", f"{ENTERPRISE}:organization": "Contoso"}},
    )
    expected["emails"][0]["value"] = "alex.w@contoso.example"
    expected["name"]["familyName"] = "Wilber-Smith"
    # The display name was the given and family name, so it follows them (the directory's rule).
    expected["name"]["formatted"] = expected["displayName"] = "Alex Wilber-Smith"
    expected["phoneNumbers"] = [{"value": "+1 425 555 0100", "type": "work", "primary": False}]
    expected["addresses"] = [
        {"streetAddress": "1 Microsoft Way", "locality": "Redmond", "type": "work", "primary": False}
    ]
    expected["title"] = "Senior Engineer"
    expected[ENTERPRISE].update(department="Research", organization="Contoso")
    _read_back(http, user_id, expected)
    _patch(http, user_id, {"op": "Replace", "path": "userName", "value": "alex.wilber@contoso.example"})
    expected["userName"] = "alex.wilber@contoso.example"
    _read_back(http, user_id, expected)

    # The manager: Entra sends the manager's id as a plain string.
    _patch(http, user_id, {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": manager["id"]})
    expected[ENTERPRISE]["manager"] = {
        "value": manager["id"],
        "$ref": f"{str(http.base_url).rstrip('/')}/Users/{manager['id']}",
        "displayName": "Megan Bowen",
    }
    _read_back(http, user_id, expected)
    assert User.objects.get(pk=user_id).manager_id is not None

    # Disable (a string "False", as Entra sends it), then remove the manager.
    _patch(http, user_id, {"op": "Replace", "path": "active", "value": "False"})
    expected["active"] = False
    _read_back(http, user_id, expected)
    assert User.objects.get(pk=user_id).status == UserStatus.SUSPENDED
    _patch(http, user_id, {"op": "Remove", "path": f"{ENTERPRISE}:manager"})
    del expected[ENTERPRISE]["manager"]
    _read_back(http, user_id, expected)
    assert User.objects.get(pk=user_id).manager_id is None

    # Deleting the manager clears the reports' manager.
    _patch(http, user_id, {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": manager["id"]})
    assert http.delete(f"/Users/{manager['id']}").status_code == 204
    assert "manager" not in _ok(http.get(f"/Users/{user_id}"))[ENTERPRISE]
    assert http.delete(f"/Users/{user_id}").status_code == 204
    assert http.get(f"/Users/{user_id}").status_code == 404


# --- Okta --------------------------------------------------------------------------------------


def _okta_user(user_name: str, given: str, family: str, enterprise: dict) -> dict:
    """Okta's create request (its SCIM 2.0 guide), with the Enterprise User attributes of its
    default SCIM attribute mappings."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": f"00u{given.lower()}",
        "groups": [],
        "active": True,
        "title": "Analyst",
        "userType": "Employee",
        "phoneNumbers": [{"primary": True, "value": "+1 415 555 0199", "type": "mobile"}],
        "addresses": [
            {
                "primary": True,
                "type": "work",
                "streetAddress": "100 First St",
                "locality": "San Francisco",
                "region": "CA",
                "postalCode": "94105",
                "country": "US",
            }
        ],
        ENTERPRISE: enterprise,
    }


def _okta_expected(body: dict) -> dict:
    expected = copy.deepcopy({key: value for key, value in body.items() if key != "groups"})
    # name.formatted is the display name here (RFC 7643: "the full name ... formatted for display").
    expected["name"]["formatted"] = body["displayName"]
    expected["emails"] = [{"value": e["value"], "type": e["type"], "primary": e["primary"]} for e in body["emails"]]
    return expected


def test_okta_provisioning_session(http):
    assert _lookup(http, "boss@okta.example")["totalResults"] == 0
    boss_body = _okta_user("boss@okta.example", "Bo", "Boss", {"department": "Sales"})
    boss = _ok(http.post("/Users", json=boss_body, headers=JSON), 201)
    _read_back(http, boss["id"], _okta_expected(boss_body))

    user_name = "isaac@okta.example"
    assert _lookup(http, user_name)["totalResults"] == 0
    enterprise = {
        "employeeNumber": "E-77",
        "costCenter": "CC-9",
        "organization": "Okta Example",
        "division": "Field",
        "department": "Sales",
        # Okta sends the manager with its displayName, which is read-only here and ignored.
        "manager": {"value": boss["id"], "displayName": "Bo Boss"},
    }
    body = _okta_user(user_name, "Isaac", "Brock", enterprise)
    created = _ok(http.post("/Users", json=body, headers=JSON), 201)
    user_id = created["id"]
    expected = _okta_expected(body)
    expected[ENTERPRISE]["manager"] = {
        "value": boss["id"],
        "$ref": f"{str(http.base_url).rstrip('/')}/Users/{boss['id']}",
        "displayName": "Bo Boss",
    }
    assert _comparable(created) == expected
    _read_back(http, user_id, expected)
    assert _lookup(http, user_name)["Resources"][0]["id"] == user_id

    # Okta updates with a PUT of the whole user, as it last read it and changed.
    full = _ok(http.get(f"/Users/{user_id}"))
    full["title"] = "Senior Analyst"
    full["phoneNumbers"].append({"primary": False, "value": "+1 415 555 0100", "type": "work"})
    full[ENTERPRISE]["department"] = "Marketing"
    full[ENTERPRISE]["manager"] = {"value": boss["id"], "displayName": "Bo Boss"}
    replaced = _ok(http.put(f"/Users/{user_id}", json=full, headers=JSON))
    expected["title"] = "Senior Analyst"
    expected["phoneNumbers"].append({"value": "+1 415 555 0100", "type": "work", "primary": False})
    expected[ENTERPRISE]["department"] = "Marketing"
    assert _comparable(replaced) == expected
    _read_back(http, user_id, expected)

    # Deactivation.
    _patch(http, user_id, {"op": "replace", "value": {"active": False}})
    expected["active"] = False
    _read_back(http, user_id, expected)
    assert User.objects.get(pk=user_id).status == UserStatus.SUSPENDED
    # The reactivation Okta sends when the user is assigned again.
    _patch(http, user_id, {"op": "replace", "value": {"active": True}})
    expected["active"] = True
    _read_back(http, user_id, expected)
