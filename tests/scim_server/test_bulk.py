"""/Bulk: bulkId references, failOnErrors, and the advertised limits enforced."""

import pytest

from apps.directory.models import Group, Membership, User
from tests.factories import UserFactory
from tests.scim_server.conftest import GROUP_SCHEMA, PATCH_OP, assert_scim_error, user_body

pytestmark = pytest.mark.django_db

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(*operations, fail_on_errors=None) -> dict:
    body = {"schemas": [BULK], "Operations": list(operations)}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return body


def test_bulk_creates_with_bulk_id_references_in_any_order(scim):
    response = scim.post(
        "Bulk",
        bulk(
            # The group comes first and names users created later in the request.
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": {
                    "schemas": [GROUP_SCHEMA],
                    "displayName": "Bulk Team",
                    "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}],
                },
            },
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_body("bulk.one")},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": user_body("bulk.two")},
            {
                "method": "PATCH",
                "path": "/Users/bulkId:u2",
                "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]},
            },
        ),
    )
    assert response.status_code == 200, response.content
    document = response.json()
    assert document["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]
    statuses = {(op["method"], op.get("bulkId")): op["status"] for op in document["Operations"]}
    assert statuses == {("POST", "g1"): "201", ("POST", "u1"): "201", ("POST", "u2"): "201", ("PATCH", None): "200"}
    group = Group.objects.get(name="Bulk Team")
    assert set(Membership.objects.filter(group=group).values_list("user__username", flat=True)) == {
        "bulk.one",
        "bulk.two",
    }
    assert User.objects.get(username="bulk.two").status == "suspended"
    located = next(op for op in document["Operations"] if op.get("bulkId") == "u1")
    assert located["location"].endswith(str(User.objects.get(username="bulk.one").pk))
    assert located["version"].startswith('W/"')


def test_fail_on_errors_stops_processing(scim):
    UserFactory(username="taken")
    response = scim.post(
        "Bulk",
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body("taken")},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": user_body("never.created")},
            fail_on_errors=1,
        ),
    )
    operations = response.json()["Operations"]
    assert len(operations) == 1 and operations[0]["status"] == "409"
    assert operations[0]["response"]["scimType"] == "uniqueness"
    assert not User.objects.filter(username="never.created").exists()


def test_errors_are_reported_per_operation_without_failing_the_rest(scim):
    response = scim.post(
        "Bulk",
        bulk(
            {"method": "DELETE", "path": "/Users/11111111-1111-1111-1111-111111111111"},
            {"method": "POST", "path": "/Users", "bulkId": "ok", "data": user_body("bulk.ok")},
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "bad",
                "data": {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": "bulkId:missing"}]},
            },
        ),
    )
    statuses = [op["status"] for op in response.json()["Operations"]]
    assert statuses == ["404", "201", "409"]


def test_limits_are_enforced(scim, settings):
    settings.SCIM_BULK_MAX_OPERATIONS = 2
    too_many = bulk(*[{"method": "DELETE", "path": f"/Users/{index}"} for index in range(3)])
    assert_scim_error(scim.post("Bulk", too_many), 413)
    settings.SCIM_MAX_PAYLOAD_BYTES = 1000
    big = bulk({"method": "POST", "path": "/Users", "bulkId": "x", "data": user_body("x" * 2000)})
    assert_scim_error(scim.post("Bulk", big), 413)
    assert_scim_error(scim.post("Bulk", {"Operations": []}), 400, "invalidSyntax")


def test_bulk_respects_token_scope(scim_read_only):
    response = scim_read_only.post(
        "Bulk", bulk({"method": "POST", "path": "/Users", "bulkId": "r", "data": user_body()})
    )
    assert response.json()["Operations"][0]["status"] == "403"
