"""/api/v1/groups/{id}/rule, its preview and /api/v1/group-rule-attributes through a real bearer token;
member edits of a rule-based group refused; user writes over the API re-evaluate the rules."""

import json

import pytest
from rest_framework.test import APIClient

from apps.directory.models import Membership
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db

ENGINEERING = {"match": "all", "conditions": [{"attribute": "email", "op": "ew", "value": "@eng.example.com"}]}


def members(group) -> set[str]:
    return set(Membership.objects.filter(group=group).values_list("user__username", flat=True))


def rule_url(group, suffix: str = "") -> str:
    return f"/api/v1/groups/{group.pk}/rule{suffix}"


def test_preview_then_save_read_and_remove(api_client):
    ann = UserFactory(username="ann", email="ann@eng.example.com")
    UserFactory(username="bob", email="bob@eng.example.com")
    zed = UserFactory(username="zed", email="zed@sales.example.com")
    group = GroupFactory(name="Engineering", members=[zed])
    assert api_client.get(rule_url(group)).json() == {
        "detail": "Engineering is not rule-based: its members are edited one by one."
    }
    preview = api_client.post(rule_url(group, "/preview"), ENGINEERING, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json() == {
        "rule": 'email ew "@eng.example.com"',
        "matches": 2,
        "added": 2,
        "removed": 1,
        "added_sample": ["ann", "bob"],
        "removed_sample": ["zed"],
        "confirmation_required": False,
        "removal_threshold": 25,
    }
    assert members(group) == {"zed"}
    saved = api_client.put(rule_url(group), {**ENGINEERING, "exclude": [str(ann.pk)]}, format="json")
    assert saved.status_code == 200, saved.content
    assert saved.json()["added"] == 1 and saved.json()["removed"] == 1
    assert saved.json()["exclude"] == [{"id": str(ann.pk), "username": "ann"}]
    assert members(group) == {"bob"}
    read = api_client.get(rule_url(group)).json()
    assert read["rule"] == 'email ew "@eng.example.com"' and read["match"] == "all" and read["include"] == []
    assert api_client.get(f"/api/v1/groups/{group.pk}").json()["rule_based"] is True
    assert api_client.delete(rule_url(group)).status_code == 204
    assert api_client.get(f"/api/v1/groups/{group.pk}").json()["rule_based"] is False
    assert members(group) == {"bob"}


def test_bad_rules_are_400_naming_each_condition(api_client):
    group = GroupFactory(name="Engineering")
    bad = {
        "match": "all",
        "conditions": [
            {"attribute": "dept", "op": "eq", "value": "x"},
            {"attribute": "status", "op": "gt", "value": "active"},
        ],
    }
    response = api_client.put(rule_url(group), bad, format="json")
    assert response.status_code == 400
    errors = response.json()["conditions"]
    assert errors[0].startswith("Condition 1: unknown attribute 'dept'")
    assert errors[1].startswith("Condition 2: gt (is greater than) does not apply to status, a enum")
    unknown_user = {**ENGINEERING, "include": ["00000000-0000-4000-8000-000000000000"]}
    response = api_client.put(rule_url(group), unknown_user, format="json")
    assert response.status_code == 400 and "No such user" in response.json()["include"][0]
    assert api_client.get(f"/api/v1/groups/{group.pk}").json()["rule_based"] is False


def test_mass_removal_needs_the_confirm_flag(api_client, settings):
    settings.GROUP_RULE_CONFIRM_REMOVALS = 1
    UserFactory(username="ann", email="ann@eng.example.com")
    UserFactory(username="bob", email="bob@eng.example.com")
    group = GroupFactory(name="Engineering")
    assert api_client.put(rule_url(group), ENGINEERING, format="json").status_code == 200
    sales = {"match": "all", "conditions": [{"attribute": "email", "op": "ew", "value": "@sales.example.com"}]}
    refused = api_client.put(rule_url(group), sales, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "confirm_removals"
    assert (refused.json()["removals"], refused.json()["threshold"]) == (2, 1)
    assert members(group) == {"ann", "bob"}
    confirmed = api_client.put(rule_url(group), {**sales, "confirm_removals": True}, format="json")
    assert confirmed.status_code == 200 and confirmed.json()["removed"] == 2


def test_member_edits_of_a_rule_based_group_are_refused(api_client):
    ann = UserFactory(username="ann", email="ann@eng.example.com")
    bob = UserFactory(username="bob", email="bob@sales.example.com")
    group = GroupFactory(name="Engineering")
    api_client.put(rule_url(group), ENGINEERING, format="json")
    for response in (
        api_client.post(f"/api/v1/groups/{group.pk}/members", {"user": str(bob.pk)}, format="json"),
        api_client.delete(f"/api/v1/groups/{group.pk}/members/{ann.pk}"),
        api_client.patch(f"/api/v1/groups/{group.pk}", {"members": [str(bob.pk)]}, format="json"),
    ):
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "rule_based_group"
        assert "Engineering is a rule-based group" in response.json()["detail"]
    assert members(group) == {"ann"}


def test_user_writes_over_the_api_re_evaluate(api_client):
    group = GroupFactory(name="Engineering")
    api_client.put(rule_url(group), ENGINEERING, format="json")
    created = api_client.post("/api/v1/users", {"username": "cid", "email": "cid@eng.example.com"}, format="json")
    assert created.status_code == 201, created.content
    assert members(group) == {"cid"}
    updated = api_client.patch(
        f"/api/v1/users/{created.json()['id']}", {"email": "cid@sales.example.com"}, format="json"
    )
    assert updated.status_code == 200, updated.content
    assert members(group) == set()


def test_rule_attributes_list_and_schema(api_client):
    attributes = {row["name"]: row for row in api_client.get("/api/v1/group-rule-attributes").json()}
    assert attributes["status"]["operators"] == ["eq", "ne", "in", "pr"]
    assert attributes["status"]["choices"] == ["active", "suspended", "staged"]
    assert attributes["department"]["type"] == "string"
    schema = json.loads(APIClient().get("/api/v1/schema", {"format": "json"}).content)
    assert {
        "/api/v1/groups/{group_id}/rule",
        "/api/v1/groups/{group_id}/rule/preview",
        "/api/v1/group-rule-attributes",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/api/v1/groups/{group_id}/rule"]) >= {"get", "put", "delete"}
    assert "confirm_removals" in schema["components"]["schemas"]["RuleWriteInputRequest"]["properties"]


def test_unknown_fields_are_refused(api_client):
    group = GroupFactory(name="Engineering")
    response = api_client.put(rule_url(group), {**ENGINEERING, "confirm": True}, format="json")
    assert response.status_code == 400 and response.json()["confirm"] == ["Unknown or read-only field."]
