"""Authentication, discovery, list parameters, limits and hostile input."""

import json
import logging
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.directory import services
from apps.scim_server.models import ScimToken
from apps.scim_server.services import scim_token_revoke
from tests.factories import GroupFactory, UserFactory
from tests.scim_server.conftest import (
    ENTERPRISE,
    PATCH_OP,
    SCIM_JSON,
    ScimClient,
    assert_scim_error,
    make_scim_client,
    user_body,
)

pytestmark = pytest.mark.django_db


# --- Authentication ----------------------------------------------------------------------------


def test_no_token_is_401_with_bearer_challenge_and_scim_body():
    response = Client().get("/scim/v2/Users")
    assert_scim_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_session_cookie_is_not_scim_authentication(admin_user):
    client = Client()
    client.force_login(admin_user)
    for method, path in [("get", "/scim/v2/Users"), ("post", "/scim/v2/Users"), ("get", "/scim/v2/Schemas")]:
        response = getattr(client, method)(
            path, data=json.dumps(user_body()) if method == "post" else None, content_type=SCIM_JSON
        )
        assert_scim_error(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_wrong_scheme_or_unknown_token_is_401(scim):
    assert_scim_error(Client(HTTP_AUTHORIZATION=f"Basic {scim.secret}").get("/scim/v2/Users"), 401)
    response = Client(HTTP_AUTHORIZATION="Bearer idp_scim_nope").get("/scim/v2/Users")
    assert_scim_error(response, 401)
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_revoked_token_fails_at_once_and_use_is_recorded(scim):
    assert scim.get("Users").status_code == 200
    token = ScimToken.objects.get(pk=scim.token.pk)
    assert token.last_used_at is not None and token.last_used_ip == "127.0.0.1"
    scim_token_revoke(actor=None, token=token)
    assert_scim_error(scim.get("Users"), 401)


def test_per_token_rate_limit_answers_429_with_retry_after(settings):
    settings.SCIM_RATE_LIMIT_PER_MINUTE = 3
    limited, other = make_scim_client("limited"), make_scim_client("other")
    statuses = [limited.get("ServiceProviderConfig").status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    response = limited.get("ServiceProviderConfig")
    assert_scim_error(response, 429)
    assert 1 <= int(response["Retry-After"]) <= 61
    assert other.get("ServiceProviderConfig").status_code == 200


def test_tokens_are_stored_hashed_and_shown_once_through_the_api(api_client):
    response = api_client.post("/api/v1/scim-tokens", {"name": "okta", "scope": "read_only"}, format="json")
    assert response.status_code == 201, response.content
    secret = response.json()["secret"]
    assert secret.startswith("idp_scim_")
    token = ScimToken.objects.get(name="okta")
    assert secret not in token.secret_hash and token.scope == "read_only"
    listed = api_client.get("/api/v1/scim-tokens").json()
    assert "secret" not in json.dumps(listed) and secret not in json.dumps(listed)
    client = ScimClient(secret, token)
    assert client.get("Users").status_code == 200
    assert_scim_error(client.post("Users", user_body()), 403)
    assert api_client.delete(f"/api/v1/scim-tokens/{token.pk}").status_code == 204
    assert_scim_error(client.get("Users"), 401)
    group = GroupFactory()
    scoped = api_client.post("/api/v1/scim-tokens", {"name": "hr", "scope_group": str(group.pk)}, format="json")
    assert scoped.json()["scope_group"] == str(group.pk)
    assert api_client.post("/api/v1/scim-tokens", {"name": "x", "is_admin": True}, format="json").status_code == 400


def test_create_scim_token_command_prints_a_working_token(capsys):
    call_command("create_scim_token", "workday")
    secret = capsys.readouterr().out.strip()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/scim/v2/Users").status_code == 200
    call_command("create_scim_token", "viewer", "--read-only")
    assert ScimToken.objects.get(name="viewer").scope == "read_only"


# --- Discovery ---------------------------------------------------------------------------------


def test_service_provider_config_tells_what_is_supported(scim, settings):
    document = scim.get("ServiceProviderConfig").json()
    assert document["patch"] == {"supported": True}
    assert document["bulk"] == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576}
    assert document["filter"] == {"supported": True, "maxResults": 1000}
    assert document["sort"] == {"supported": True} and document["etag"] == {"supported": True}
    assert document["changePassword"] == {"supported": False}
    assert document["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types_and_schemas_are_list_responses_with_total_results(scim):
    types = scim.get("ResourceTypes").json()
    assert types["totalResults"] == 2 and {t["id"] for t in types["Resources"]} == {"User", "Group"}
    schemas = scim.get("Schemas").json()
    assert schemas["totalResults"] == len(schemas["Resources"]) == 6
    user_schema = scim.get("Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()
    names = [attribute["name"] for attribute in user_schema["attributes"]]
    assert names[:3] == ["userName", "name", "displayName"] and names[-5:] == [
        "emails",
        "phoneNumbers",
        "photos",
        "addresses",
        "groups",
    ]
    assert "password" not in names
    assert scim.get(f"Schemas/{ENTERPRISE}").json()["attributes"][0]["name"] == "employeeNumber"
    assert_scim_error(scim.get("Schemas/urn:nope"), 404)
    assert_scim_error(scim.get("ResourceTypes/Nope"), 404)
    assert_scim_error(scim.get("Nowhere"), 404)


def test_password_is_advertised_and_write_only_when_enabled(scim, settings, caplog):
    settings.SCIM_ALLOW_PASSWORD_WRITE = True
    attributes = scim.get("Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json()["attributes"]
    password = next(attribute for attribute in attributes if attribute["name"] == "password")
    assert (password["mutability"], password["returned"]) == ("writeOnly", "never")
    secret = "Pw-Never-Logged-93817"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django_scim").setLevel(logging.DEBUG)
    created = scim.post("Users", user_body("pw.user", password=secret))
    assert created.status_code == 201 and secret not in created.content.decode()
    user_id = created.json()["id"]
    patched = scim.patch_ops(f"Users/{user_id}", {"op": "replace", "path": "password", "value": secret + "x"})
    assert patched.status_code == 200 and secret not in patched.content.decode()
    from apps.directory.models import User

    assert User.objects.get(pk=user_id).check_password(secret + "x")
    listed = scim.get("Users", filter='userName eq "pw.user"', attributes="password").content.decode()
    assert secret not in listed and "password" not in listed
    logged = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records)
    assert secret not in logged


def test_a_password_is_never_logged_even_when_refused(scim, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Refused-Secret-55102"
    assert_scim_error(scim.post("Users", user_body("nopw", password=secret)), 400, "mutability")
    user = UserFactory()
    assert_scim_error(
        scim.patch_ops(f"Users/{user.pk}", {"op": "add", "value": {"password": secret}}), 400, "mutability"
    )
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_unsupported_methods_are_405_scim_errors(scim):
    for method, path in [
        ("post", "Schemas"),
        ("delete", "ResourceTypes"),
        ("put", "ServiceProviderConfig"),
        ("delete", "Users"),
    ]:
        response = getattr(scim, method)(path, {}) if method in ("post", "put") else getattr(scim, method)(path)
        assert_scim_error(response, 405)


# --- Lists ---------------------------------------------------------------------------------------


@pytest.fixture
def ten_users(db):
    return [UserFactory(username=f"page.{index:02d}") for index in range(10)]


def test_pagination_caps_and_bounds(scim, ten_users, settings):
    settings.SCIM_MAX_PAGE_SIZE = 4
    page = scim.get("Users", count="50").json()
    assert (page["totalResults"], page["itemsPerPage"], page["startIndex"]) == (10, 4, 1)
    empty = scim.get("Users", count="-5").json()
    assert (empty["totalResults"], empty["itemsPerPage"], empty["Resources"]) == (10, 0, [])
    assert scim.get("Users", startIndex="-3", count="2").json()["startIndex"] == 1
    assert scim.get("Users", startIndex="11").json()["Resources"] == []
    huge = scim.get("Users", startIndex="9" * 30).json()
    assert (huge["totalResults"], huge["Resources"]) == (10, [])
    assert_scim_error(scim.get("Users", count="ten"), 400, "invalidValue")
    assert_scim_error(scim.get("Users", startIndex="1.5"), 400, "invalidValue")


def test_sorting_and_paging_walk_every_user_once(scim, ten_users):
    seen = []
    for start in (1, 4, 7, 10):
        page = scim.get("Users", startIndex=str(start), count="3", sortBy="userName", sortOrder="descending").json()
        seen += [resource["userName"] for resource in page["Resources"]]
    assert seen == sorted((user.username for user in ten_users), reverse=True)
    assert_scim_error(scim.get("Users", sortBy="password"), 400, "invalidValue")
    assert_scim_error(scim.get("Users", sortOrder="sideways"), 400, "invalidValue")


def test_attributes_and_excluded_attributes(scim, ten_users):
    only = scim.get("Users", filter='userName eq "page.01"', attributes="userName,emails.value").json()["Resources"][0]
    assert set(only) == {"schemas", "id", "userName", "emails"}
    assert only["emails"] == [{"value": "page.01@example.com"}]
    without = scim.get(f"Users/{ten_users[0].pk}", excludedAttributes="emails,name,meta").json()
    assert "emails" not in without and "name" not in without and "meta" not in without and without["id"]
    primary = scim.get(f"Users/{ten_users[0].pk}", attributes="emails.primary,emails.value").json()
    assert primary["emails"] == [{"value": ten_users[0].email, "primary": True}]


def test_search_endpoints(scim, ten_users):
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName sw "page.0"',
        "count": 2,
        "attributes": ["userName"],
    }
    result = scim.post("Users/.search", body).json()
    assert result["totalResults"] == 10 and len(result["Resources"]) == 2
    assert set(result["Resources"][0]) == {"schemas", "id", "userName"}
    GroupFactory(name="Page Group")
    everything = scim.post("/scim/v2/.search", {**body, "filter": 'displayName eq "Page Group"', "count": 10}).json()
    assert everything["totalResults"] == 1
    assert_scim_error(scim.post("Users/.search", {"filter": "x"}), 400, "invalidSyntax")


def test_a_page_costs_a_constant_number_of_queries(scim):
    group = GroupFactory()

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert scim.get("Users", count="100").status_code == 200
        return len(captured.captured_queries)

    users = [UserFactory() for _ in range(3)]
    services.group_add_members(actor=None, group=group, users=users)
    queries_for_page()  # the token's first use of the minute also records last_used_at
    small = queries_for_page()
    more = [UserFactory() for _ in range(30)]
    services.group_add_members(actor=None, group=group, users=more)
    assert queries_for_page() == small <= 5
    with CaptureQueriesContext(connection) as captured:
        scim.get("Groups", count="100")
    assert len(captured.captured_queries) <= 5


# --- Hostile bodies ----------------------------------------------------------------------------


def test_a_10_mb_body_is_413_without_being_parsed(scim):
    body = '{"schemas": [], "userName": "' + "x" * (10 * 1024 * 1024) + '"}'
    started = time.monotonic()
    assert_scim_error(scim.post("Users", body), 413)
    assert time.monotonic() - started < 2


def test_json_nested_100000_deep_is_400(scim):
    started = time.monotonic()
    assert_scim_error(scim.post("Users", "[" * 100_000 + "]" * 100_000), 400, "invalidSyntax")
    assert_scim_error(scim.post("Users", '{"a":' * 50 + "1" + "}" * 50), 400, "invalidSyntax")
    assert time.monotonic() - started < 2


def test_ten_thousand_emails_are_400(scim):
    emails = [{"value": f"u{index}@example.com", "type": "work"} for index in range(10_000)]
    started = time.monotonic()
    assert_scim_error(scim.post("Users", user_body("many.mails", emails=emails)), 400, "invalidValue")
    assert time.monotonic() - started < 2


def test_malformed_json_and_nul_characters_are_400(scim):
    assert_scim_error(scim.post("Users", "{not json"), 400, "invalidSyntax")
    assert_scim_error(scim.post("Users", user_body("nul\u0000user")), 400, "invalidValue")
    assert_scim_error(scim.get("Users", filter='userName eq "a\u0000"'), 400, "invalidFilter")
    assert_scim_error(scim.patch("Users/11111111-1111-1111-1111-111111111111", {"schemas": [PATCH_OP]}), 404)
    user = UserFactory()
    assert_scim_error(scim.patch(f"Users/{user.pk}", {"schemas": [PATCH_OP], "Operations": []}), 400, "invalidSyntax")
    assert_scim_error(scim.patch(f"Users/{user.pk}", [1, 2]), 400, "invalidSyntax")


def test_django_scim2_settings_hook_resolves_our_adapters_and_documents():
    from django_scim.utils import (
        get_all_schemas_getter,
        get_group_adapter,
        get_service_provider_config_model,
        get_user_adapter,
    )

    from apps.scim_server.adapters import ScimGroupAdapter, ScimUserAdapter
    from apps.scim_server.schemas import ServiceProviderConfig, schema_documents

    assert get_user_adapter() is ScimUserAdapter and get_group_adapter() is ScimGroupAdapter
    assert get_service_provider_config_model() is ServiceProviderConfig
    assert get_all_schemas_getter() is schema_documents
