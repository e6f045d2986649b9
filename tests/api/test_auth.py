"""Bearer-token authentication, staff-only permission, the token command, the schema and request ids."""

import hashlib
import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.api.services import api_token_create, api_token_revoke
from apps.audit.models import AuditEvent
from apps.common.errors import ApplicationError
from apps.directory import services
from apps.directory.models import User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

USERS = "/api/v1/users"


def _client(secret: str | None = None, *, scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    if secret is not None:
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {secret}")
    return client


@pytest.fixture
def staff():
    return UserFactory(username="staff.member", is_staff=True)


@pytest.fixture
def staff_token(staff):
    token, secret = api_token_create(actor=None, user=staff, name="staff token")
    return token, secret


# --- authentication ------------------------------------------------------------------------------


def test_no_credentials_is_401_with_bearer_challenge(db):
    response = _client().get(USERS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "url",
    [
        USERS,
        "/api/v1/groups",
        "/api/v1/audit-events",
        "/api/v1/users/00000000-0000-0000-0000-000000000000",
        "/api/v1/groups/00000000-0000-0000-0000-000000000000/members",
    ],
)
def test_every_endpoint_needs_a_token(db, url):
    assert _client().get(url).status_code == 401
    assert _client().post(url, {}, format="json").status_code == 401


def test_unauthenticated_writes_change_nothing(db):
    count = User.objects.count()
    response = _client().post(USERS, {"username": "intruder"}, format="json")
    assert response.status_code == 401
    assert User.objects.count() == count


def test_valid_token_works(staff_token):
    _, secret = staff_token
    response = _client(secret).get(USERS)
    assert response.status_code == 200
    assert _client(secret, scheme="bearer").get(USERS).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer idp_api_wrong",
        "Bearer ",
        "Bearer two parts",
        "Token idp_api_wrong",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_wrong_or_malformed_credentials_are_401(staff_token, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(USERS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_tampered_token_is_401(staff_token):
    _, secret = staff_token
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert _client(tampered).get(USERS).status_code == 401


def test_revoked_token_is_401(staff, staff_token):
    token, secret = staff_token
    assert _client(secret).get(USERS).status_code == 200

    api_token_revoke(actor=staff, token=token)

    response = _client(secret).get(USERS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert AuditEvent.objects.filter(action="api_token.revoke", target_id=str(token.pk)).count() == 1
    api_token_revoke(actor=staff, token=token)
    assert AuditEvent.objects.filter(action="api_token.revoke", target_id=str(token.pk)).count() == 1


def test_expired_token_is_401(staff):
    _, expired = api_token_create(actor=None, user=staff, name="old", expires_at=timezone.now() - timedelta(seconds=1))
    _, live = api_token_create(actor=None, user=staff, name="new", expires_at=timezone.now() + timedelta(hours=1))

    assert _client(expired).get(USERS).status_code == 401
    assert _client(live).get(USERS).status_code == 200


def test_token_expiring_after_use_stops_working(staff_token):
    token, secret = staff_token
    assert _client(secret).get(USERS).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _client(secret).get(USERS).status_code == 401


def test_tokens_cannot_be_created_for_non_staff_or_inactive_users(db):
    plain = UserFactory(is_staff=False)
    suspended_staff = UserFactory(is_staff=True, status="suspended")

    with pytest.raises(ApplicationError) as not_staff:
        api_token_create(actor=None, user=plain, name="nope")
    with pytest.raises(ApplicationError) as inactive:
        api_token_create(actor=None, user=suspended_staff, name="nope")

    assert not_staff.value.code == "not_staff"
    assert inactive.value.code == "inactive"
    assert not ApiToken.objects.exists()


def test_staff_demoted_after_token_creation_gets_403(staff, staff_token):
    _, secret = staff_token
    services.user_update(actor=None, user=staff, is_staff=False)

    response = _client(secret).get(USERS)

    assert response.status_code == 403
    assert _client(secret).post(USERS, {"username": "sneaky"}, format="json").status_code == 403
    assert not User.objects.filter(username="sneaky").exists()


@pytest.mark.parametrize("operation", [services.user_suspend, services.user_stage])
def test_token_of_a_user_who_is_no_longer_active_is_401(staff, staff_token, operation):
    _, secret = staff_token
    operation(actor=None, user=staff)

    response = _client(secret).get(USERS)

    assert response.status_code == 401
    services.user_reactivate(actor=None, user=staff)
    assert _client(secret).get(USERS).status_code == 200


def test_token_of_a_deleted_user_is_401(staff, staff_token):
    _, secret = staff_token
    services.user_delete(actor=None, user=staff)
    assert _client(secret).get(USERS).status_code == 401
    assert not ApiToken.objects.exists()


def test_token_use_is_recorded(staff_token):
    token, secret = staff_token
    assert token.last_used_at is None
    _client(secret).get(USERS)
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert token.last_used_ip == "127.0.0.1"


# --- storage -------------------------------------------------------------------------------------


def test_token_is_stored_only_as_sha256(staff, staff_token):
    token, secret = staff_token
    token.refresh_from_db()

    assert re.fullmatch(r"idp_api_[A-Za-z0-9_-]{40,}", secret)
    assert token.secret_hash != secret
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(token.prefix)
    assert len(token.prefix) < len(secret) // 2
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    for column, value in row.items():
        assert secret not in str(value), column
    for event in AuditEvent.objects.all():
        assert secret not in json.dumps([event.before, event.after, event.target_label, event.actor_label])


def test_each_token_is_distinct(staff):
    secrets = {api_token_create(actor=None, user=staff, name=f"t{index}")[1] for index in range(5)}
    assert len(secrets) == 5
    assert ApiToken.objects.filter(user=staff).count() == 5


def test_token_creation_is_audited_without_the_secret(staff):
    actor = UserFactory(username="issuer", is_staff=True)
    token, secret = api_token_create(actor=actor, user=staff, name="ci")
    event = AuditEvent.objects.get(action="api_token.create", target_id=str(token.pk))
    assert event.actor == actor
    assert event.target_type == "api.apitoken"
    assert event.after == {"name": "ci", "user": "staff.member"}
    assert secret not in json.dumps(event.after)


# --- management command --------------------------------------------------------------------------


def test_create_api_token_command_prints_a_working_token(staff):
    out, err = StringIO(), StringIO()

    call_command("create_api_token", "STAFF.member", "--name", "from cli", stdout=out, stderr=err)

    secret = out.getvalue().strip()
    assert secret.startswith("idp_api_")
    assert "\n" not in secret
    assert secret not in err.getvalue()
    token = ApiToken.objects.get(user=staff)
    assert token.name == "from cli"
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    response = _client(secret).get(USERS)
    assert response.status_code == 200


def test_create_api_token_command_refuses_unknown_and_non_staff_users(db):
    UserFactory(username="plain.user", is_staff=False)

    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", "ghost", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="not staff"):
        call_command("create_api_token", "plain.user", stdout=StringIO(), stderr=StringIO())

    assert not ApiToken.objects.exists()


# --- schema and docs -----------------------------------------------------------------------------


def _schema(client: APIClient) -> dict:
    response = client.get("/api/v1/schema", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_is_public_openapi_json_with_the_endpoints(db):
    schema = _schema(APIClient())

    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "idp-portal Admin API"
    paths = {path.rstrip("/") for path in schema["paths"]}
    assert {
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/groups",
        "/api/v1/groups/{id}",
        "/api/v1/groups/{id}/members",
        "/api/v1/groups/{id}/members/{user_id}",
        "/api/v1/audit-events",
        "/api/v1/audit-events/{id}",
    } <= paths
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    # Whether a password is temporary is shown; the password itself never is.
    assert "password" not in schema["components"]["schemas"]["UserOutput"]["properties"]


def test_schema_default_is_yaml_and_accept_json_works(db):
    client = APIClient()
    yaml_response = client.get("/api/v1/schema")
    assert yaml_response.status_code == 200
    assert yaml_response.content.startswith(b"openapi:")

    json_response = client.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert json_response.status_code == 200
    assert "paths" in json.loads(json_response.content)


def test_schema_documents_paths_without_trailing_slash(db):
    paths = set(_schema(APIClient())["paths"])
    assert "/api/v1/users" in paths
    assert "/api/v1/groups/{id}/members" in paths


def test_docs_page_is_html(db):
    response = APIClient().get("/api/v1/docs")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"<html" in response.content.lower()
    assert b"swagger" in response.content.lower()


# --- request ids ---------------------------------------------------------------------------------


def test_request_id_is_carried_into_the_audit_event(api_client):
    response = api_client.post(USERS, {"username": "traced.user"}, format="json", HTTP_X_REQUEST_ID="req-12345678")

    assert response.status_code == 201
    assert response["X-Request-ID"] == "req-12345678"
    event = AuditEvent.objects.get(action="user.create", target_id=response.json()["id"])
    assert event.request_id == "req-12345678"
    assert event.ip == "127.0.0.1"
    assert event.actor == api_client.user


@pytest.mark.parametrize("offered", ["<script>", "short", "x" * 65, "has space here", "req-1234;drop"])
def test_malformed_request_id_is_replaced(api_client, offered):
    response = api_client.post(USERS, {"username": "untrusted.id"}, format="json", HTTP_X_REQUEST_ID=offered)

    assert response.status_code == 201
    event = AuditEvent.objects.get(action="user.create", target_id=response.json()["id"])
    assert event.request_id != offered
    assert re.fullmatch(r"[0-9a-f]{32}", event.request_id)
    assert response["X-Request-ID"] == event.request_id


def test_request_id_is_generated_when_absent(api_client):
    first = api_client.post(USERS, {"username": "no.id.1"}, format="json")
    second = api_client.post(USERS, {"username": "no.id.2"}, format="json")
    ids = {
        AuditEvent.objects.get(action="user.create", target_id=response.json()["id"]).request_id
        for response in (first, second)
    }
    assert len(ids) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)


def test_services_outside_a_request_have_no_request_id(db):
    user = UserFactory()
    event = AuditEvent.objects.get(action="user.create", target_id=str(user.pk))
    assert event.request_id == ""
    assert event.ip is None
