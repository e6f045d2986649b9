"""Done as the issue puts it: an admin creates an OIDC connector from the catalog in the console,
and a real relying party (Authlib, over HTTP on loopback) signs a user in and out."""

import re

import pytest

from apps.directory import services as directory
from tests.factories import GroupFactory, UserFactory
from tests.interop.browser import Browser
from tests.interop.oidc_rps import AuthlibRP, CallbackServer, portal_is_signed_in, query_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def callback():
    server = CallbackServer()
    server.start()
    yield server
    server.stop()


def test_console_made_connector_signs_a_real_rp_in_and_out(live_server, settings, admin, admin_client, callback):
    settings.PORTAL_BASE_URL = live_server.url
    group = GroupFactory(name="Readers")
    reader = UserFactory(username="rita.reader", email="rita@example.com", password="s3cret-Pass-99")
    directory.group_add_members(actor=None, group=group, users=[reader])

    created = admin_client.post("/console/connectors/new/generic-oidc/", {"name": "Docs"})
    secret = re.search(r'id="oidc-client-secret">([^<]+)<', created.content.decode()).group(1)
    slug = "docs"
    admin_client.post(
        f"/console/connectors/{slug}/oidc/",
        {
            "client_type": "confidential",
            "redirect_uris": f"{callback.base}/docs/callback",
            "post_logout_redirect_uris": f"{callback.base}/docs/signed-out",
            "allowed_scopes": ["openid", "profile", "email", "groups", "offline_access"],
            "sub_source": "id",
            "access_token_lifetime_seconds": "600",
            "id_token_lifetime_seconds": "600",
            "refresh_token_lifetime_seconds": "3600",
        },
    )
    admin_client.post(f"/console/connectors/{slug}/assignments/", {"group": str(group.pk)})
    admin_client.post(f"/console/connectors/{slug}/activate/", {"action": "activate"})
    client_id = re.search(r'id="oidc-client-id">([^<]+)<', created.content.decode()).group(1)

    rp = AuthlibRP(slug, f"{live_server.url}/oidc/{slug}", client_id, secret, callback)
    browser = Browser(username="rita.reader", password="s3cret-Pass-99")
    page = browser.get(rp.authorization_url())
    assert "code" in query_of(page.url), (page.url, page.text[:300])
    claims = rp.finish_sign_in(str(page.url))
    assert claims["preferred_username"] == "rita.reader" and claims["groups"] == ["Readers"]
    assert rp.userinfo()["email"] == "rita@example.com"

    signed_out = browser.get(rp.logout_url("/docs/signed-out"))
    assert str(signed_out.url).startswith(f"{callback.base}/docs/signed-out")
    assert not portal_is_signed_in(browser.client, live_server.url)
    browser.close()
