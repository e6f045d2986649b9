"""Attacks on the OpenID Connect provider, each performed against the real endpoints: the request
is refused with the OAuth error it should get, nothing is issued, and the refusal is audited."""

import base64
import hashlib
import hmac
import json

from django.test import override_settings
from oauth2_provider.models import AccessToken, RefreshToken

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.oidc import keys
from tests.oidc.conftest import REDIRECT_URI, RelyingParty, make_oidc_connector, sign_in


def _refusals(reason: str) -> list[AuditEvent]:
    return [
        event
        for event in AuditEvent.objects.filter(action__in=["oidc.authorize.refused", "oidc.token.refused"])
        if (event.after or {}).get("reason") == reason
    ]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: dict, claims: dict, signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def test_redirect_uri_mismatch_is_an_error_page_not_a_redirect(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    for uri in ("https://evil.example.com/callback", f"{REDIRECT_URI}/more", f"{REDIRECT_URI}?next=/x"):
        response = rp.authorize(redirect_uri=uri)
        assert response.status_code == 400, uri
        assert "Location" not in response
        assert b"evil.example.com" not in response.content
    assert AuditEvent.objects.filter(action="oidc.authorize.refused", target_id=str(connector.pk)).count() == 3


def test_replayed_state_and_nonce_are_refused(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    rp.code()
    url = rp.authorize_url()
    first = client.get(url)
    assert "code" in RelyingParty.answer(first)
    again = RelyingParty.answer(client.get(url))  # the same request, state and nonce, once more
    assert again["error"] == "invalid_request" and "code" not in again
    assert _refusals("state_replay")
    fresh_state = rp.authorize_url().replace(f"state={rp.state}", "state=another-state")
    nonce = rp.nonce
    client.get(fresh_state)
    replayed_nonce = RelyingParty.answer(client.get(rp.authorize_url(state="yet-another", nonce=nonce)))
    assert replayed_nonce["error"] == "invalid_request"
    assert _refusals("nonce_replay")


def test_reused_code_is_refused_and_revokes_what_it_issued(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    code = rp.code()
    tokens = json.loads(rp.token(code).content)
    assert rp.userinfo(tokens["access_token"]).status_code == 200
    second = rp.token(code)
    assert second.status_code == 400 and json.loads(second.content)["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    assert rp.refresh(tokens["refresh_token"]).status_code == 400
    assert _refusals("code_reused")


def test_pkce_downgrades_are_refused(client, connector, group):
    sign_in(client)
    rp = RelyingParty(client, connector)
    plain = RelyingParty.answer(rp.authorize(code_challenge="a" * 43, code_challenge_method="plain"))
    assert plain["error"] == "invalid_request"
    assert _refusals("pkce_plain")
    # A code issued without a challenge cannot be redeemed with a verifier (RFC 9700 2.1.1).
    code = rp.code(code_challenge=None, code_challenge_method=None)
    downgraded = rp.token(code, verifier="x" * 50)
    assert downgraded.status_code == 400 and json.loads(downgraded.content)["error"] == "invalid_grant"
    # A wrong verifier for a code issued with one.
    wrong = rp.token(rp.code(), verifier="y" * 50)
    assert wrong.status_code == 400 and json.loads(wrong.content)["error"] == "invalid_grant"
    # A public client must send a challenge at all.
    public = make_oidc_connector(slug="spa", oidc={"client_type": "public"})
    connector_services.assignment_create(actor=None, connector=public, group=group)
    spa = RelyingParty(client, public, secret="")
    missing = RelyingParty.answer(spa.authorize(code_challenge=None, code_challenge_method=None))
    assert missing["error"] == "invalid_request"
    assert AccessToken.objects.count() == 0


def test_request_objects_are_refused_whatever_their_algorithm(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    claims = {"iss": rp.client_id, "aud": connector.idp_entity_id, "redirect_uri": "https://evil.example.com/"}
    none_alg = _jwt({"alg": "none"}, claims)
    public_pem = keys.jwks_keys(connector)[0].certificate_pem.encode()
    head_body = _jwt({"alg": "HS256", "typ": "JWT"}, claims).rsplit(".", 1)[0]
    confused = f"{head_body}.{_b64(hmac.new(public_pem, head_body.encode(), hashlib.sha256).digest())}"
    for token, reason in ((none_alg, "request_object_alg_none"), (confused, "request_object_alg_hs256")):
        answer = RelyingParty.answer(rp.authorize(request=token))
        assert answer["error"] == "request_not_supported"
        assert answer.get("code") is None
        assert _refusals(reason), reason
    by_reference = RelyingParty.answer(rp.authorize(request_uri="https://evil.example.com/request.jwt"))
    assert by_reference["error"] == "request_uri_not_supported"


def test_forged_id_token_hints_are_refused_at_logout(client, connector, user):
    sign_in(client)
    rp = RelyingParty(client, connector)
    claims = {"iss": connector.idp_entity_id, "aud": rp.client_id, "sub": str(user.pk)}
    public_pem = keys.jwks_keys(connector)[0].certificate_pem.encode()
    head_body = _jwt({"alg": "HS256"}, claims).rsplit(".", 1)[0]
    forged = [
        _jwt({"alg": "none"}, claims),
        f"{head_body}.{_b64(hmac.new(public_pem, head_body.encode(), hashlib.sha256).digest())}",
    ]
    for hint in forged:
        response = client.get(
            f"/oidc/{connector.slug}/logout",
            {"id_token_hint": hint, "post_logout_redirect_uri": "https://rp.example.com/signed-out"},
        )
        assert response.status_code == 400
        assert "Location" not in response
    assert client.get("/").status_code == 200  # still signed in
    assert AuditEvent.objects.filter(action="oidc.logout.refused").count() == 2


def test_oversized_parameters_are_refused(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    with override_settings(OIDC_MAX_PARAMETER_LENGTH=256):
        response = rp.authorize(state="s" * 300)
    assert response.status_code == 400 and "Location" not in response
    assert _refusals("oversized")
    doubled = client.get(rp.authorize_url() + "&scope=openid")
    assert doubled.status_code == 400


def test_unassigned_and_suspended_users_get_no_code(client, connector, user, group):
    from apps.directory import services as directory_services
    from tests.factories import UserFactory

    UserFactory(username="omar.out", password="s3cret-Pass-99")
    sign_in(client, username="omar.out")
    answer = RelyingParty.answer(RelyingParty(client, connector).authorize())
    assert answer["error"] == "access_denied" and "code" not in answer
    assert _refusals("not_assigned")
    client.logout()
    sign_in(client)
    rp = RelyingParty(client, connector)
    tokens = rp.tokens()
    pending_code = rp.code()
    directory_services.user_suspend(actor=None, user=user)
    # The portal drops a suspended account's session at once: a silent request finds nobody.
    assert RelyingParty.answer(rp.authorize(prompt="none"))["error"] == "login_required"
    # Everything issued before the suspension stops working.
    assert json.loads(rp.token(pending_code).content)["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    assert json.loads(rp.refresh(tokens["refresh_token"]).content)["error"] == "invalid_grant"


def test_reused_refresh_token_revokes_the_family(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    tokens = rp.tokens()
    rotated = json.loads(rp.refresh(tokens["refresh_token"]).content)
    reuse = rp.refresh(tokens["refresh_token"])
    assert reuse.status_code == 400 and json.loads(reuse.content)["error"] == "invalid_grant"
    assert json.loads(rp.refresh(rotated["refresh_token"]).content)["error"] == "invalid_grant"
    assert rp.userinfo(rotated["access_token"]).status_code == 401
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()
    assert _refusals("refresh_token_reused")


def test_clients_authenticate_with_their_own_secret_at_their_own_issuer(client, connector, group):
    sign_in(client)
    wrong = RelyingParty(client, connector, secret="idp_oidc_not-the-secret")
    response = wrong.token(wrong.code())
    assert response.status_code == 401 and json.loads(response.content)["error"] == "invalid_client"
    other = make_oidc_connector(slug="other-rp")
    connector_services.assignment_create(actor=None, connector=other, group=group)
    # The other connector's client, at this connector's issuer: unknown here.
    stranger = RelyingParty(client, other)
    stranger.base = f"/oidc/{connector.slug}"
    assert client.get(stranger.authorize_url()).status_code == 400
