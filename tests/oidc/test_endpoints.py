"""Discovery, keys, introspection, revocation, client secrets, the catalog and the admin API."""

import base64
import datetime
import json

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.connectors.catalog import get_template
from apps.connectors.models import OidcSettings
from apps.connectors.oidc_settings import oidc_client_secret_rotate
from apps.saml_idp import keys as signing_keys
from tests.oidc.conftest import REDIRECT_URI, RelyingParty, make_oidc_connector, sign_in


def _basic(client_id: str, secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_discovery_is_per_issuer(client, connector):
    document = client.get(f"/oidc/{connector.slug}/.well-known/openid-configuration").json()
    issuer = connector.idp_entity_id
    assert document["issuer"] == issuer and issuer.endswith("/oidc/rp")
    assert document["authorization_endpoint"] == f"{issuer}/authorize"
    assert document["end_session_endpoint"] == f"{issuer}/logout"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["request_parameter_supported"] is False
    assert client.get("/oidc/nothing-here/.well-known/openid-configuration").status_code == 404


def test_jwks_publishes_the_next_key_before_rotation_and_the_retired_one_after(client, connector, admin_user):
    active = signing_keys.ensure_active_key()
    kids = lambda: [key["kid"] for key in client.get(f"/oidc/{connector.slug}/jwks").json()["keys"]]  # noqa: E731
    assert len(kids()) == 1
    next_key = signing_keys.signing_key_create_next(actor=admin_user)
    before = kids()
    assert len(before) == 2
    sign_in(client)
    rp = RelyingParty(client, connector)
    old_token = rp.tokens()["id_token"]
    signing_keys.signing_key_rotate(actor=admin_user)
    after = kids()
    assert set(after) == set(before)  # the new key, and the retired one for tokens signed before
    new_token = rp.tokens()["id_token"]
    assert rp.id_token_claims(old_token)["sub"] == rp.id_token_claims(new_token)["sub"]
    header = json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))
    assert header["kid"] == after[0] and header["alg"] == "RS256"
    assert active.pk != next_key.pk


def test_introspection_answers_for_the_clients_own_tokens(client, connector, group):
    sign_in(client)
    rp = RelyingParty(client, connector)
    tokens = rp.tokens()
    auth = _basic(rp.client_id, rp.secret)
    active = client.post(f"/oidc/{connector.slug}/introspect", {"token": tokens["access_token"]}, **auth).json()
    assert active["active"] is True and active["client_id"] == rp.client_id and "openid" in active["scope"]
    refresh = client.post(
        f"/oidc/{connector.slug}/introspect",
        {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        **auth,
    ).json()
    assert refresh["active"] is True
    other = make_oidc_connector(slug="other")
    foreign = client.post(
        "/oidc/other/introspect",
        {"token": tokens["access_token"]},
        **_basic(other.oidc.client_id, other.issued_client_secret),
    ).json()
    assert foreign == {"active": False}
    unauthenticated = client.post(f"/oidc/{connector.slug}/introspect", {"token": tokens["access_token"]})
    assert unauthenticated.status_code == 401


def test_revocation_ends_the_refresh_token(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    tokens = rp.tokens()
    response = client.post(
        f"/oidc/{connector.slug}/revoke",
        {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        **_basic(rp.client_id, rp.secret),
    )
    assert response.status_code == 200
    assert json.loads(rp.refresh(tokens["refresh_token"]).content)["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_secret_rotation_keeps_the_previous_secret_for_the_overlap(client, connector):
    sign_in(client)
    old_secret = connector.issued_client_secret
    issued = oidc_client_secret_rotate(actor=None, connector=connector, overlap_seconds=3600)
    connector.refresh_from_db()
    assert issued.secret != old_secret and issued.previous_valid_until is not None
    settings = OidcSettings.objects.get(connector=connector)
    assert old_secret not in (settings.client_secret_hash, settings.previous_secret_hash)
    for secret in (old_secret, issued.secret):
        rp = RelyingParty(client, connector, secret=secret)
        assert rp.token(rp.code()).status_code == 200
    OidcSettings.objects.filter(connector=connector).update(
        previous_secret_expires=timezone.now() - datetime.timedelta(seconds=1)
    )
    expired = RelyingParty(client, connector, secret=old_secret)
    assert expired.token(expired.code()).status_code == 401
    immediate = oidc_client_secret_rotate(actor=None, connector=connector, overlap_seconds=0)
    stale = RelyingParty(client, connector, secret=issued.secret)
    assert stale.token(stale.code()).status_code == 401
    assert RelyingParty(client, connector, secret=immediate.secret).tokens()["id_token"]
    assert AuditEvent.objects.filter(action="connector.oidc.secret_rotate").count() == 2


def test_public_clients_have_no_secret(db):
    connector = make_oidc_connector(oidc={"client_type": "public"})
    assert connector.issued_client_secret is None and not connector.oidc.client_secret_hash
    with pytest.raises(Exception, match="public client"):
        oidc_client_secret_rotate(actor=None, connector=connector)


def test_redirect_uris_are_https_exact_and_follow_the_vendor_pattern(db):
    from django.core.exceptions import ValidationError

    for bad in ("http://rp.example.com/cb", "https://rp.example.com/cb#frag", "javascript:alert(1)"):
        with pytest.raises(ValidationError):
            make_oidc_connector(slug="bad", oidc={"redirect_uris": [bad]})
    loopback = make_oidc_connector(slug="cli", oidc={"redirect_uris": ["http://127.0.0.1:8250/oidc/callback"]})
    assert loopback.oidc.redirect_uris == ["http://127.0.0.1:8250/oidc/callback"]
    tailscale = make_oidc_connector(template="tailscale", slug="tailscale", oidc={"redirect_uris": []})
    tailscale = type(tailscale).objects.get(pk=tailscale.pk)
    assert get_template("tailscale").oidc["redirect_uri_pattern"] == "https://login.tailscale.com/a/oauth_response"
    with pytest.raises(ValidationError):
        make_oidc_connector(template="grafana", slug="grafana", oidc={"redirect_uris": [REDIRECT_URI]})
    grafana = make_oidc_connector(
        template="grafana", slug="grafana", oidc={"redirect_uris": ["https://grafana.example.com/login/generic_oauth"]}
    )
    assert grafana.oidc.redirect_uri_pattern == "https://{host}/login/generic_oauth"


def test_api_creates_an_oidc_connector_and_rotates_its_secret(api_client):
    created = api_client.post(
        "/api/v1/connectors",
        {"template": "generic-oidc", "name": "Wiki", "oidc": {"redirect_uris": [REDIRECT_URI]}},
        format="json",
    )
    assert created.status_code == 201, created.content
    oidc = created.json()["oidc"]
    assert oidc["client_secret"].startswith("idp_oidc_") and oidc["client_secret_set"] is True
    assert oidc["urls"]["issuer"].endswith("/oidc/wiki")
    again = api_client.get(f"/api/v1/connectors/{created.json()['id']}").json()["oidc"]
    assert again["client_secret"] is None  # shown once
    rotated = api_client.post(f"/api/v1/connectors/{created.json()['id']}/oidc/client-secret", {}, format="json")
    assert rotated.status_code == 201 and rotated.json()["client_secret"] != oidc["client_secret"]
    refused = api_client.patch(
        f"/api/v1/connectors/{created.json()['id']}",
        {"oidc": {"redirect_uris": ["http://evil.example.com/"]}},
        format="json",
    )
    assert refused.status_code == 400 and "redirect_uris" in refused.json()["oidc"]
    mappings = api_client.get(f"/api/v1/connectors/{created.json()['id']}/mappings").json()
    assert {"source": "groups", "target": "groups"}.items() <= next(
        row for row in mappings if row["target"] == "groups"
    ).items()


def test_checks_name_what_the_oidc_settings_lack(db):
    from apps.connectors.checks import connector_checks

    connector = make_oidc_connector(slug="bare", oidc={"redirect_uris": [], "frontchannel_logout_uri": ""})
    codes = {check.code: check for check in connector_checks(connector)}
    assert codes["oidc_no_redirect_uri"].blocks_activation
    assert not codes["oidc_no_frontchannel_logout"].blocks_activation


def test_housekeeping_sweeps_expired_codes(client, connector):
    from oauth2_provider.models import Grant

    from apps.oidc.tasks import housekeeping

    sign_in(client)
    RelyingParty(client, connector).code()
    Grant.objects.update(expires=timezone.now() - datetime.timedelta(minutes=1))
    housekeeping()
    assert not Grant.objects.exists()


def test_responses_name_their_issuer_and_tokens_are_stored_as_checksums(client, connector):
    from oauth2_provider.models import AccessToken, RefreshToken

    sign_in(client)
    rp = RelyingParty(client, connector)
    answer = RelyingParty.answer(rp.authorize())
    assert answer["iss"] == connector.idp_entity_id  # RFC 9207
    tokens = json.loads(rp.token(answer["code"]).content)
    assert RelyingParty.answer(rp.authorize(prompt="none", max_age="0"))["iss"] == connector.idp_entity_id
    assert {row.token for row in AccessToken.objects.all()} == {""}
    assert {row.token for row in RefreshToken.objects.all()} == {""}
    assert rp.userinfo(tokens["access_token"]).status_code == 200


def test_the_key_page_shows_which_oidc_apps_fetched_the_next_key(client, connector, admin_user):
    signing_keys.ensure_active_key()
    next_key = signing_keys.signing_key_create_next(actor=admin_user)
    pending = {c.slug: c for c in signing_keys.metadata_pickup(next_key)}[connector.slug]
    assert pending.fetched_since_next is None
    client.get(f"/oidc/{connector.slug}/jwks", HTTP_USER_AGENT="rp/1.0")
    fetched = {c.slug: c for c in signing_keys.metadata_pickup(next_key)}[connector.slug]
    assert fetched.fetched_since_next is not None
