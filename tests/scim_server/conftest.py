import json
from typing import Any

import pytest
from django.test import Client

from apps.scim_server.models import ScimTokenScope
from apps.scim_server.services import scim_token_create

SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimClient:
    """A Django test client speaking SCIM with a bearer token."""

    def __init__(self, secret: str, token) -> None:
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
        self.secret = secret
        self.token = token

    def _send(self, method: str, path: str, body: Any = None, **headers):
        url = path if path.startswith("/") else f"/scim/v2/{path}"
        kwargs = {}
        if body is not None:
            kwargs["data"] = body if isinstance(body, str | bytes) else json.dumps(body)
            kwargs["content_type"] = SCIM_JSON
        return getattr(self.client, method)(url, **headers, **kwargs)

    def get(self, path: str, **params):
        url = path if path.startswith("/") else f"/scim/v2/{path}"
        return self.client.get(url, params)

    def post(self, path: str, body: Any, **headers):
        return self._send("post", path, body, **headers)

    def put(self, path: str, body: Any, **headers):
        return self._send("put", path, body, **headers)

    def patch(self, path: str, body: Any, **headers):
        return self._send("patch", path, body, **headers)

    def delete(self, path: str, **headers):
        return self._send("delete", path, **headers)

    def patch_ops(self, path: str, *operations: dict, **headers):
        return self.patch(path, {"schemas": [PATCH_OP], "Operations": list(operations)}, **headers)


def make_scim_client(name: str = "tests", **kwargs) -> ScimClient:
    token, secret = scim_token_create(actor=None, name=name, **kwargs)
    return ScimClient(secret, token)


@pytest.fixture
def scim(db) -> ScimClient:
    return make_scim_client()


@pytest.fixture
def scim_read_only(db) -> ScimClient:
    return make_scim_client("read-only", scope=ScimTokenScope.READ_ONLY)


def user_body(username: str = "jane.doe", **extra) -> dict:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": username,
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"value": f"{username}@example.com", "type": "work", "primary": True}],
        "active": True,
    }
    body.update(extra)
    return body


def assert_scim_error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith(SCIM_JSON)
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body["detail"]
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body
