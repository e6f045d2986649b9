"""Odd input anywhere answers a SCIM error, never a 500 or an HTML page."""

import json

import pytest

from tests.factories import GroupFactory, UserFactory
from tests.scim_server.conftest import PATCH_OP, SCIM_JSON

pytestmark = pytest.mark.django_db

BODIES = [
    "null",
    "[]",
    '"text"',
    "123",
    "{}",
    '{"schemas": "x"}',
    '{"schemas": [1]}',
    '{"userName": ["a"]}',
    '{"userName": {"a": 1}}',
    '{"displayName": null, "members": "x"}',
    '{"members": [{"value": null}]}',
    '{"members": [{"value": 5}]}',
    '{"emails": {"value": "a@b.example"}}',
    '{"emails": [{"value": 5}]}',
    '{"name": "x"}',
    '{"name": {"givenName": 5}}',
    '{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": 5}',
    '{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": []}}',
    '{"Operations": "x"}',
    '{"Operations": [1]}',
    '{"Operations": [{"op": 5}]}',
    '{"Operations": [{"op": "add", "path": 5, "value": 1}]}',
    '{"Operations": [{"op": "add", "path": "", "value": 1}]}',
    '{"Operations": [{"op": "add", "path": "emails[", "value": 1}]}',
    '{"Operations": [{"op": "add", "path": "emails[type eq \\"work\\"].value.x", "value": 1}]}',
    '{"Operations": [{"op": "add", "path": "members[value eq \\"x\\"]", "value": 1}]}',
    '{"Operations": [{"op": "replace", "path": "emails", "value": [1, 2]}]}',
    '{"Operations": [{"op": "replace", "path": "name", "value": [1]}]}',
    '{"Operations": [{"op": "add", "value": {"emails[type eq \\"work\\"].value": "a@b.example"}}]}',
    '{"Operations": [{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "value": 1}]}',
    '{"Operations": [{"op": "remove", "path": "emails[value pr]"}]}',
    '{"Operations": [{"op": "add", "path": "emails[not (type eq \\"x\\")].value", "value": "a@b.example"}]}',
    '{"Operations": [{"op": "replace", "path": "active", "value": null}]}',
    '{"Operations": [{"op": "replace", "path": "members", "value": {"value": "nope"}}]}',
    '{"method": "POST"}',
    '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [{"method": "POST", "path": 5}]}',
    '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], '
    '"Operations": [{"method": "GET", "path": "/Users"}]}',
    '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": "x", "Operations": []}',
    '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": "x"}',
    '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 5}',
    '{"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "attributes": 5}',
    b"\xff\xfe not utf-8",
]


def test_odd_bodies_never_cause_a_server_error(scim):
    user, group = UserFactory(), GroupFactory()
    targets = [
        ("post", "Users"),
        ("post", "Groups"),
        ("put", f"Users/{user.pk}"),
        ("put", f"Groups/{group.pk}"),
        ("patch", f"Users/{user.pk}"),
        ("patch", f"Groups/{group.pk}"),
        ("post", "Bulk"),
        ("post", "Users/.search"),
        ("post", ".search"),
    ]
    for method, path in targets:
        for body in BODIES:
            if method == "patch" and isinstance(body, str) and body.startswith("{") and '"Operations"' in body:
                body = json.dumps({"schemas": [PATCH_OP], **json.loads(body)})
            response = getattr(scim, method)(path, body)
            assert response.status_code < 500, (method, path, body, response.content[:300])
            assert response["Content-Type"].startswith(SCIM_JSON), (method, path, body)


def test_odd_query_parameters_never_cause_a_server_error(scim):
    UserFactory()
    for params in [
        {"filter": 'emails[type eq "work"] and (userName pr or not (active eq true))'},
        {"filter": "userName eq"},
        {"filter": "[]"},
        {"filter": '"just a string"'},
        {"filter": 'emails[value co "x"].value eq "y"'},
        {"filter": 'members[value eq "x"]'},
        {"sortBy": 'emails[type eq "work"]'},
        {"sortBy": "urn:x:y"},
        {"attributes": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,name.givenName,$ref"},
        {"excludedAttributes": "id,schemas,meta.version"},
        {"count": "1e3"},
        {"startIndex": " 2 "},
    ]:
        for path in ("Users", "Groups"):
            response = scim.get(path, **params)
            assert response.status_code < 500, (path, params, response.content[:300])
            assert response["Content-Type"].startswith(SCIM_JSON)
