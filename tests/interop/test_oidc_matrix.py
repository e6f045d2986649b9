"""The OpenID Connect relying-party matrix: Authlib (a public client with PKCE, and a confidential
one) and pyoidc (confidential) against the portal served by gunicorn on a database of its own,
set up as an admin would through the admin API: a `generic-oidc` connector from the catalog, its
redirect URIs, a group assigned. Each RP goes through discovery, code + PKCE, ID-token validation
against the JWKS, userinfo, refresh, RP-initiated logout, a sign-out from the launchpad (which
reaches it front-channel) and, after the portal's signing key is rotated (the next key published
first, as for SAML), all of it again. The terminal summary prints the matrix
(tests/interop/oidc_matrix.py).
"""

import json
import traceback
from collections.abc import Callable

import httpx
import pytest
from lxml import html

from tests.interop.browser import Browser
from tests.interop.oidc_rps import AuthlibRP, CallbackServer, PyoidcRP, portal_is_signed_in, query_of
from tests.interop.servers import PortalInstance

pytestmark = pytest.mark.slow

PASSWORD = "Oidc-Interop-Pass-2026!"
RELYING_PARTIES = {
    "Authlib 1.9 (public, PKCE)": ("authlib", "public"),
    "Authlib 1.9 (confidential, client_secret_post)": ("authlib", "confidential"),
    "pyoidc 1.7 (confidential, client_secret_basic)": ("pyoidc", "confidential"),
}


def _ok(response: httpx.Response, *codes: int) -> dict:
    assert response.status_code in (codes or (200,)), (response.request.url, response.status_code, response.text[:800])
    return response.json() if response.content else {}


@pytest.fixture(scope="module")
def oidc_portal(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        portal = PortalInstance("oidc", "127.0.0.1")
    try:
        migration = portal.migrate()
        assert migration.wait(timeout=300) == 0, portal.log_tail()
        portal.start()
        yield portal
    finally:
        portal.stop()


@pytest.fixture(scope="module")
def people(oidc_portal) -> dict:
    api = oidc_portal.api
    user = _ok(
        api.post(
            "/users",
            json={
                "username": "olivia.oidc",
                "email": "olivia.oidc@example.com",
                "first_name": "Olivia",
                "last_name": "Oidc",
                "password": PASSWORD,
                "password_temporary": False,
            },
        ),
        201,
    )
    group = _ok(api.post("/groups", json={"name": "OIDC Testers"}), 201)
    _ok(api.post(f"/groups/{group['id']}/members", json={"user": user["id"]}), 200, 201)
    return {"user": user, "group": group}


@pytest.fixture(scope="module")
def callback():
    server = CallbackServer()
    server.start()
    yield server
    server.stop()


def _connector(portal: PortalInstance, people: dict, callback: CallbackServer, slug: str, client_type: str) -> dict:
    api = portal.api
    connector = _ok(
        api.post(
            "/connectors",
            json={
                "template": "generic-oidc",
                "name": slug,
                "slug": slug,
                "oidc": {
                    "client_type": client_type,
                    "redirect_uris": [f"{callback.base}/{slug}/callback"],
                    "post_logout_redirect_uris": [f"{callback.base}/{slug}/signed-out"],
                    "frontchannel_logout_uri": f"{callback.base}/{slug}/frontchannel",
                },
            },
        ),
        201,
    )
    _ok(api.post(f"/connectors/{connector['id']}/assignments", json={"group": people["group"]["id"]}), 201)
    _ok(api.patch(f"/connectors/{connector['id']}", json={"enabled": True}))
    return connector


def _rotate_signing_key(portal: PortalInstance, before_rotation: Callable[[], None]) -> None:
    """The two steps of a rotation: publish the next key, let the apps fetch it, then rotate."""
    _ok(portal.api.post("/idp-keys", json={}), 201)
    before_rotation()
    _ok(portal.api.post("/idp-keys/rotate", json={}), 200, 201)


@pytest.mark.parametrize("rp_name", list(RELYING_PARTIES))
def test_relying_party(rp_name, oidc_portal, people, callback, record_property):
    library, client_type = RELYING_PARTIES[rp_name]
    slug = f"{library}-{client_type}"
    connector = _connector(oidc_portal, people, callback, slug, client_type)
    issuer = connector["oidc"]["urls"]["issuer"]
    client_id, secret = connector["oidc"]["client_id"], connector["oidc"]["client_secret"]
    assert (secret is None) == (client_type == "public")
    browser = Browser(username="olivia.oidc", password=PASSWORD)
    results: dict[str, str] = {}
    failures: list[str] = []
    state: dict = {}

    def flow(name: str, steps: Callable[[], None]) -> None:
        try:
            steps()
        except Exception:  # noqa: BLE001 - a failed flow is a cell of the matrix, reported below
            results[name] = "FAILED"
            failures.append(f"{name}:\n{traceback.format_exc()[-2500:]}")
        else:
            results.setdefault(name, "ok")

    def make_rp():
        if library == "authlib":
            return AuthlibRP(slug, issuer, client_id, secret, callback)
        return PyoidcRP(slug, issuer, client_id, secret, callback)

    def discovery() -> None:
        metadata = _ok(httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10))
        assert metadata["issuer"] == issuer
        assert metadata["code_challenge_methods_supported"] == ["S256"]
        state["rp"] = make_rp()

    def sign_in() -> None:
        rp = state["rp"]
        page = browser.get(rp.authorization_url())
        assert str(page.url).startswith(rp.redirect_uri), (page.url, page.text[:300])
        assert "code" in query_of(page.url), page.url
        state["claims"] = rp.finish_sign_in(str(page.url))

    def id_token() -> None:
        claims = state["claims"]
        assert claims["iss"] == issuer and claims["aud"] in (client_id, [client_id])
        assert claims["sub"] == people["user"]["id"]
        assert claims["email"] == "olivia.oidc@example.com" and claims["amr"] == ["pwd"] and claims["sid"]

    def userinfo() -> None:
        info = state["rp"].userinfo()
        assert info["sub"] == people["user"]["id"]
        assert info["preferred_username"] == "olivia.oidc" and info["groups"] == ["OIDC Testers"]

    def refresh() -> None:
        claims = state["rp"].refresh()
        assert claims["sub"] == people["user"]["id"] and claims["auth_time"] == state["claims"]["auth_time"]

    def rp_initiated_logout() -> None:
        rp = state["rp"]
        page = browser.get(rp.logout_url(f"/{slug}/signed-out"))
        assert str(page.url).startswith(f"{callback.base}/{slug}/signed-out"), (page.url, page.text[:300])
        assert query_of(page.url)["state"] == f"bye-{slug}"
        assert not portal_is_signed_in(browser.client, oidc_portal.base)
        with pytest.raises(Exception):  # noqa: B017 - each library words invalid_grant its own way
            rp.refresh()

    def portal_sign_out() -> None:
        sign_in()
        launchpad = browser.get(f"{oidc_portal.base}/logout/")
        form = html.fromstring(launchpad.content).forms[0]
        fields = {element.name: element.value for element in form.inputs if element.name}
        signed_out = browser.client.post(f"{oidc_portal.base}/logout/", data=fields)
        frames = html.fromstring(signed_out.content).xpath("//iframe[@data-src]/@data-src")
        mine = [src for src in frames if src.startswith(f"{callback.base}/{slug}/frontchannel")]
        assert mine, frames
        assert query_of(mine[0]) == {"iss": issuer, "sid": state["claims"]["sid"]}
        browser.client.get(mine[0])  # what the page's script does with each frame
        assert callback.hits_to(f"/{slug}/frontchannel")
        with pytest.raises(Exception):  # noqa: B017 - the refresh token died with the session
            state["rp"].refresh()

    def after_rotation() -> None:
        old_id_token = getattr(state["rp"], "id_token_jwt", "") or state["rp"].token.get("id_token", "")
        _rotate_signing_key(oidc_portal, before_rotation=lambda: getattr(state["rp"], "refresh_jwks", lambda: None)())
        keys = _ok(httpx.get(f"{issuer}/jwks", timeout=10))["keys"]
        assert len(keys) >= 2, keys  # the new key, and the retired one for tokens signed before
        sign_in()
        id_token()
        userinfo()
        refresh()
        if library == "authlib" and old_id_token:
            state["rp"].validated_id_token(old_id_token)  # signed by the retired key, still verifiable

    flow("discovery", discovery)
    flow("code + PKCE", sign_in)
    flow("ID token vs JWKS", id_token)
    flow("userinfo", userinfo)
    flow("refresh", refresh)
    flow("RP-initiated logout", rp_initiated_logout)
    flow("portal sign-out", portal_sign_out)
    flow("after key rotation", after_rotation)
    browser.close()
    record_property("oidc_rp", rp_name)
    record_property("oidc_results", json.dumps(results))
    assert not failures, "\n\n".join(failures)
