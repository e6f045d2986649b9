"""The profile over /api/v1/users and the custom attribute definitions at /api/v1/custom-attributes,
through a real bearer token; and the OpenAPI schema that documents them validates."""

import io
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.api.services import api_token_create
from apps.audit.models import AuditEvent
from apps.directory import services as directory
from apps.directory.custom_attributes import custom_attribute_create
from apps.directory.models import AdminRole, CustomAttribute, User
from tests.factories import UserFactory

USERS = "/api/v1/users"
CUSTOM = "/api/v1/custom-attributes"

PROFILE = {
    "nick_name": "Babs",
    "title": "Tour Guide",
    "user_type": "Employee",
    "preferred_language": "en-US",
    "locale": "en-US",
    "timezone": "America/Los_Angeles",
    "profile_url": "https://login.example.com/bjensen",
    "emails": [{"value": "babs@jensen.org", "type": "home"}],
    "phone_numbers": [{"value": "555-555-5555", "type": "work", "primary": True}],
    "addresses": [{"locality": "Hollywood", "region": "CA", "country": "US", "type": "work", "primary": True}],
    "photos": [{"value": "https://photos.example.com/bjensen.jpg", "type": "photo"}],
    "cost_center": "4130",
    "organization": "Universal Studios",
    "division": "Theme Park",
    "department": "Tour Operations",
}


def _client_for(role: str) -> APIClient:
    user = UserFactory(username=f"{role}.api")
    directory.user_set_admin_role(actor=None, user=user, role=role)
    _, secret = api_token_create(actor=None, user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_create_and_read_the_whole_profile(api_client):
    boss = UserFactory(username="boss", display_name="Big Boss")
    custom_attribute_create(actor=None, name="region", type="enum", choices=["EMEA", "AMER"])
    response = api_client.post(
        USERS,
        {"username": "bjensen", "manager": str(boss.pk), "custom_attributes": {"region": "emea"}, **PROFILE},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    for name in ("nick_name", "title", "timezone", "department", "division", "cost_center", "profile_url"):
        assert body[name] == PROFILE[name]
    assert body["manager"] == {"id": str(boss.pk), "username": "boss", "display_name": "Big Boss"}
    assert body["phone_numbers"] == [{"value": "555-555-5555", "type": "work", "primary": True}]
    assert body["emails"] == [{"value": "babs@jensen.org", "type": "home", "primary": False}]
    assert body["addresses"][0]["locality"] == "Hollywood"
    assert body["custom_attributes"] == {"region": "EMEA"}
    assert api_client.get(f"{USERS}/{body['id']}").json() == body


def test_patch_changes_only_what_it_names_and_merges_custom_values(api_client):
    custom_attribute_create(actor=None, name="badge", type="number")
    custom_attribute_create(actor=None, name="floor", type="string")
    user = directory.user_create(
        actor=None, username="patched", title="Engineer", custom_attributes={"badge": 1, "floor": "3"}
    )
    response = api_client.patch(
        f"{USERS}/{user.pk}", {"department": "R&D", "custom_attributes": {"badge": "2", "floor": None}}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["title"] == "Engineer"
    assert response.json()["department"] == "R&D"
    assert response.json()["custom_attributes"] == {"badge": 2}
    event = AuditEvent.objects.filter(action="user.update", target_id=str(user.pk)).latest("created")
    assert event.before == {"department": "", "custom_attributes": {"badge": 1, "floor": "3"}}
    assert event.after == {"department": "R&D", "custom_attributes": {"badge": 2}}


def test_manager_can_be_cleared_and_is_checked(api_client):
    boss = UserFactory(username="boss")
    user = UserFactory(username="worker", manager=boss.pk)
    refused = api_client.patch(f"{USERS}/{boss.pk}", {"manager": str(user.pk)}, format="json")
    assert refused.status_code == 400
    assert "loop" in refused.json()["manager"][0]
    missing = api_client.patch(f"{USERS}/{user.pk}", {"manager": "00000000-0000-4000-8000-000000000000"}, format="json")
    assert missing.status_code == 400 and "No user" in missing.json()["manager"][0]
    cleared = api_client.patch(f"{USERS}/{user.pk}", {"manager": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["manager"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"phone_numbers": [{"value": "1", "primary": True}, {"value": "2", "primary": True}]}, "phone_numbers"),
        ({"phone_numbers": [{"value": "1", "colour": "red"}]}, "phone_numbers"),
        ({"photos": [{"value": "not a url"}]}, "photos"),
        ({"custom_attributes": {"nope": 1}}, "custom_attributes"),
        ({"manager": "not-a-uuid"}, "manager"),
    ],
)
def test_bad_profile_input_is_a_400_naming_the_field(api_client, payload, field):
    user = UserFactory(username="target")
    response = api_client.patch(f"{USERS}/{user.pk}", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    created = api_client.post(USERS, {"username": "never.made", **payload}, format="json")
    assert created.status_code == 400
    assert not User.objects.filter(username="never.made").exists()


def test_list_filters_on_department_title_manager_and_custom_values(api_client):
    custom_attribute_create(actor=None, name="region", type="enum", choices=["EMEA", "AMER"])
    custom_attribute_create(actor=None, name="skills", multi_valued=True)
    boss = UserFactory(username="boss")
    UserFactory(username="ann", department="Engineering", title="VP Engineering", manager=boss.pk)
    directory.user_create(
        actor=None,
        username="bob",
        department="engineering",
        custom_attributes={"region": "EMEA", "skills": ["go", "sql"]},
    )
    UserFactory(username="cid", department="Sales", manager=boss.pk)

    def names(**params) -> list[str]:
        response = api_client.get(USERS, params)
        assert response.status_code == 200, response.content
        return [user["username"] for user in response.json()["results"]]

    assert names(department="ENGINEERING") == ["ann", "bob"]
    assert names(title="vp engineering") == ["ann"]
    assert names(manager=str(boss.pk)) == ["ann", "cid"]
    assert names(**{"custom.region": "emea"}) == ["bob"]
    assert names(**{"custom.skills": "sql"}) == ["bob"]
    assert names(department="Engineering", manager=str(boss.pk)) == ["ann"]
    bad = api_client.get(USERS, {"custom.nothing": "x"})
    assert bad.status_code == 400 and "nothing" in bad.json()["custom"]
    assert api_client.get(USERS, {"manager": "nope"}).status_code == 400
    assert api_client.get(USERS, {"custom.region": "MARS"}).status_code == 400


def test_custom_attribute_definitions_crud(api_client):
    created = api_client.post(
        CUSTOM, {"name": "region", "label": "Region", "type": "enum", "choices": ["EMEA", "AMER"]}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["key"] == "custom.region" and body["choices"] == ["EMEA", "AMER"]
    assert api_client.post(CUSTOM, {"name": "REGION"}, format="json").status_code == 400
    assert api_client.post(CUSTOM, {"name": "x", "colour": "red"}, format="json").status_code == 400
    listed = api_client.get(CUSTOM).json()["results"]
    assert [item["name"] for item in listed] == ["region"]

    directory.user_create(actor=None, username="emea.person", custom_attributes={"region": "EMEA"})
    refused = api_client.patch(f"{CUSTOM}/{body['id']}", {"choices": ["AMER"]}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "custom_attribute_values_unfit"
    assert refused.json()["users"] == ["emea.person"]
    renamed = api_client.patch(f"{CUSTOM}/{body['id']}", {"name": "area"}, format="json")
    assert renamed.status_code == 400
    changed = api_client.patch(f"{CUSTOM}/{body['id']}", {"label": "Sales region", "required": True}, format="json")
    assert changed.status_code == 200 and changed.json()["label"] == "Sales region"

    assert api_client.delete(f"{CUSTOM}/{body['id']}").status_code == 204
    assert not CustomAttribute.objects.exists()
    assert User.objects.get(username="emea.person").custom_attributes == {}
    assert api_client.get(f"{CUSTOM}/{body['id']}").status_code == 404
    assert api_client.get(f"{CUSTOM}/not-a-uuid").status_code == 404


def test_help_desk_edits_profiles_but_not_definitions(db):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    helpdesk = _client_for(AdminRole.HELPDESK)
    assert helpdesk.get(CUSTOM).status_code == 200
    assert helpdesk.post(CUSTOM, {"name": "badge"}, format="json").status_code == 403
    person = UserFactory(username="person")
    assert helpdesk.patch(f"{USERS}/{person.pk}", {"title": "Welder"}, format="json").status_code == 200
    admin = UserFactory(username="an.admin", is_staff=True)
    refused = helpdesk.patch(f"{USERS}/{admin.pk}", {"title": "Intern"}, format="json")
    assert refused.status_code == 403
    assert User.objects.get(pk=admin.pk).title == ""
    assert _client_for(AdminRole.ADMIN).post(CUSTOM, {"name": "badge"}, format="json").status_code == 201


def test_openapi_schema_validates_and_documents_the_profile(db, tmp_path: Path):
    target = tmp_path / "schema.json"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target),
        stdout=StringIO(), stderr=StringIO(),
    )  # fmt: skip
    schema = json.loads(target.read_text())
    user = schema["components"]["schemas"]["UserOutput"]["properties"]
    for name in ("title", "department", "manager", "phone_numbers", "addresses", "custom_attributes"):
        assert name in user
    assert "/api/v1/custom-attributes" in schema["paths"]
    parameters = {item["name"] for item in schema["paths"]["/api/v1/users"]["get"]["parameters"]}
    assert {"department", "title", "manager", "custom.{name}"} <= parameters


def test_csv_export_and_import_over_the_api(api_client):
    custom_attribute_create(actor=None, name="region", type="enum", choices=["EMEA", "AMER"])
    directory.user_create(actor=None, username="ann", department="Engineering", custom_attributes={"region": "EMEA"})
    UserFactory(username="cid", department="Sales")
    response = api_client.get(f"{USERS}/export", {"department": "engineering"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    lines = text.splitlines()
    assert "custom.region" in lines[0].split(",") and len(lines) == 2 and lines[1].startswith("ann,")

    body = "username,department,custom.region\nann,Platform,AMER\nnew.person,Sales,\nbad,,MARS\n"
    imported = api_client.post(f"{USERS}/import", body, content_type="text/csv")
    assert imported.status_code == 200, imported.content
    report = imported.json()
    assert (report["created"], report["updated"], report["refused"]) == (1, 1, 1)
    assert report["errors"] == [
        {"line": 4, "username": "bad", "errors": {"custom_attributes.region": ["Choose one of: EMEA, AMER."]}}
    ]
    assert User.objects.get(username="ann").custom_attributes == {"region": "AMER"}

    upload = io.BytesIO(b"username,title\ncid,Closer\n")
    upload.name = "users.csv"
    multipart = api_client.post(f"{USERS}/import", {"file": upload}, format="multipart")
    assert multipart.status_code == 200 and multipart.json()["updated"] == 1
    unreadable = api_client.post(f"{USERS}/import", "title\nx\n", content_type="text/csv")
    assert unreadable.status_code == 400 and "username column" in unreadable.json()["file"][0]
    assert api_client.post(f"{USERS}/import", {}, format="json").status_code == 400


def test_read_only_may_export_but_not_import(db):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    readonly = _client_for(AdminRole.READONLY)
    assert readonly.get(f"{USERS}/export").status_code == 200
    assert readonly.post(f"{USERS}/import", "username\nx\n", content_type="text/csv").status_code == 403
