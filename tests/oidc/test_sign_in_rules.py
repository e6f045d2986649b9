"""The authorization endpoint and the portal session: prompt, max_age, acr_values / a second
factor (and what amr and acr then say), the launchpad tile, and the portal's sign-out."""

import json
import time
from urllib.parse import parse_qs, urlsplit

from django_otp.plugins.otp_totp.models import TOTPDevice
from lxml import html
from oauth2_provider.models import RefreshToken

from apps.connectors import services as connector_services
from tests.oidc.conftest import FRONTCHANNEL_URI, RelyingParty, sign_in
from tests.portal.conftest import totp_code


def _next_of(response) -> str:
    assert response.status_code == 302, response.content[:300]
    return parse_qs(urlsplit(response["Location"]).query)["next"][0]


def test_nobody_signed_in_goes_to_the_sign_in_page_and_comes_back(client, connector):
    rp = RelyingParty(client, connector)
    response = rp.authorize()
    assert response["Location"].startswith("/login/")
    back = _next_of(response)
    assert (
        client.post("/login/", {"username": "jane.doe", "password": "s3cret-Pass-99", "next": back})["Location"] == back
    )
    answer = RelyingParty.answer(client.get(back))
    assert answer["state"] == rp.state and "code" in answer


def test_prompt_none_without_a_session_answers_login_required(client, connector):
    answer = RelyingParty.answer(RelyingParty(client, connector).authorize(prompt="none"))
    assert answer["error"] == "login_required"


def test_prompt_login_and_max_age_ask_for_the_password_again(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    assert RelyingParty.answer(rp.authorize(max_age="0", prompt="none"))["error"] == "login_required"
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        back = _next_of(rp.authorize(**extra))
        assert "prompt=login" not in back
        time.sleep(1.1)  # the new sign-in is later than the request that asked for it
        sign_in(client, next_url=back)
        answer = RelyingParty.answer(client.get(back))
        assert "code" in answer, answer
    assert "code" in RelyingParty.answer(rp.authorize(max_age="3600"))


def test_acr_values_mfa_steps_up_and_amr_says_how(client, connector, user):
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    client.post("/login/", {"username": "jane.doe", "password": "s3cret-Pass-99"})
    client.post("/login/mfa/", {"code": totp_code(device)})
    rp = RelyingParty(client, connector)
    claims = rp.id_token_claims(rp.tokens(acr_values="mfa")["id_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "mfa"


def test_a_password_only_session_is_stepped_up_for_mfa(client, connector, user):
    TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    connector_services.connector_update(actor=None, connector=connector, oidc={"require_mfa": False})
    client.force_login(user)  # a session without a second factor
    rp = RelyingParty(client, connector)
    silent = RelyingParty.answer(rp.authorize(acr_values="mfa", prompt="none"))
    assert silent["error"] == "interaction_required"
    response = rp.authorize(acr_values="mfa")
    assert response["Location"].startswith("/login/mfa/")
    connector_services.connector_update(actor=None, connector=connector, oidc={"require_mfa": True})
    assert rp.authorize()["Location"].startswith("/login/mfa/")


def test_password_sign_in_says_pwd(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    claims = rp.id_token_claims(rp.tokens()["id_token"])
    assert claims["amr"] == ["pwd"] and claims["acr"] == "pwd"


def test_launchpad_tile_starts_the_sign_in(client, connector):
    sign_in(client)
    page = client.get("/")
    assert b"/oidc/rp/launch" in page.content
    launch = client.get("/oidc/rp/launch")
    assert launch["Location"].startswith(f"{connector.idp_entity_id}/authorize?client_id=")
    connector_services.connector_update(
        actor=None, connector=connector, oidc={"login_url": "https://rp.example.com/login"}
    )
    assert client.get("/oidc/rp/launch")["Location"] == "https://rp.example.com/login"


def test_signing_out_of_the_portal_ends_oidc_sessions_front_channel(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    tokens = rp.tokens()
    sid = rp.id_token_claims(tokens["id_token"])["sid"]
    page = client.post("/logout/")
    frames = html.fromstring(page.content).xpath("//iframe/@data-src")
    mine = [frame for frame in frames if frame.startswith(FRONTCHANNEL_URI)]
    assert len(mine) == 1
    assert parse_qs(urlsplit(mine[0]).query) == {"iss": [connector.idp_entity_id], "sid": [sid]}
    assert "frame-src https://rp.example.com" in page["Content-Security-Policy"]
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    assert json.loads(rp.refresh(tokens["refresh_token"]).content)["error"] == "invalid_grant"
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()


def test_rp_initiated_logout_with_a_matching_hint_signs_out_at_once(client, connector):
    sign_in(client)
    rp = RelyingParty(client, connector)
    tokens = rp.tokens()
    response = client.get(
        f"/oidc/{connector.slug}/logout",
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://rp.example.com/signed-out",
            "state": "s1",
        },
    )
    assert response.status_code == 302 and response["Location"] == "https://rp.example.com/signed-out?state=s1"
    assert client.get("/").status_code == 302  # signed out of the portal
    unregistered = client.get(
        f"/oidc/{connector.slug}/logout",
        {"client_id": rp.client_id, "post_logout_redirect_uri": "https://evil.example.com/"},
    )
    assert unregistered.status_code == 400 and "Location" not in unregistered


def test_rp_initiated_logout_without_a_hint_asks_first(client, connector):
    sign_in(client)
    response = client.get(f"/oidc/{connector.slug}/logout")
    assert response.status_code == 200 and b'name="confirm"' in response.content
    assert client.get("/").status_code == 200  # a GET from anywhere signs nobody out


def test_after_a_portal_form_the_redirect_to_the_app_is_a_page(client, connector):
    """Browsers apply a form's form-action to the redirects after it: coming from the sign-in
    form, the code goes to the app through a page that navigates by itself."""
    sign_in(client)
    rp = RelyingParty(client, connector)
    page = client.get(rp.authorize_url(), HTTP_SEC_FETCH_SITE="same-origin")
    assert page.status_code == 200 and b'http-equiv="refresh"' in page.content
    assert b"https://rp.example.com/callback?code=" in page.content.replace(b"&amp;", b"&")
    assert page["Referrer-Policy"] == "no-referrer"


def test_rp_logout_signs_the_other_apps_out_front_channel(client, connector, group):
    from tests.oidc.conftest import make_oidc_connector

    other = make_oidc_connector(slug="other", oidc={"frontchannel_logout_uri": "https://other.example.com/fc"})
    connector_services.assignment_create(actor=None, connector=other, group=group)
    sign_in(client)
    first, second = RelyingParty(client, connector), RelyingParty(client, other)
    first_tokens, second_tokens = first.tokens(), second.tokens()
    page = client.get(
        f"/oidc/{connector.slug}/logout",
        {
            "id_token_hint": first_tokens["id_token"],
            "post_logout_redirect_uri": "https://rp.example.com/signed-out",
        },
    )
    assert page.status_code == 200
    frames = html.fromstring(page.content).xpath("//iframe/@data-src")
    assert [frame.split("?")[0] for frame in frames] == ["https://other.example.com/fc"]  # not the app that asked
    assert b"https://rp.example.com/signed-out" in page.content
    for rp, tokens in ((first, first_tokens), (second, second_tokens)):
        assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_confirmed_logout_without_a_hint(client, connector):
    sign_in(client)
    page = client.post(f"/oidc/{connector.slug}/logout", {"confirm": "yes"})
    assert page.status_code == 200 and b"You are signed out" in page.content
    assert client.get("/").status_code == 302
