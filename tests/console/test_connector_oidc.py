"""The console's OpenID Connect pages: a generic-oidc connector from the catalog through the
wizard (General → Sign-in (OIDC) → Mapping → Assignments → Activate), the client secret shown
once and rotated, claims edited like SAML attributes, the OIDC tracer, and a real sign-in after."""

import json
import re

from apps.connectors.models import Connector
from apps.directory import services as directory
from apps.oidc.models import OidcTraceRecord
from tests.factories import GroupFactory, UserFactory
from tests.oidc.conftest import REDIRECT_URI, RelyingParty, sign_in


def _oidc_post(**changes) -> dict:
    data = {
        "client_type": "confidential",
        "redirect_uris": REDIRECT_URI,
        "post_logout_redirect_uris": "https://rp.example.com/signed-out",
        "frontchannel_logout_uri": "",
        "login_url": "",
        "allowed_scopes": ["openid", "profile", "email", "groups", "offline_access"],
        "sub_source": "id",
        "access_token_lifetime_seconds": "600",
        "id_token_lifetime_seconds": "600",
        "refresh_token_lifetime_seconds": "86400",
    }
    data.update(changes)
    return data


def test_oidc_wizard_from_the_catalog_to_a_sign_in(admin, admin_client, client):
    engineering = GroupFactory(name="Engineering")
    jane = UserFactory(username="jane.doe", email="jane.doe@example.com", password="s3cret-Pass-99")
    directory.group_add_members(actor=None, group=engineering, users=[jane])

    catalog = admin_client.get("/console/connectors/catalog/").content.decode()
    assert "Add Generic OpenID Connect app" in catalog and "Add Grafana" in catalog and "Add Tailscale" in catalog
    created = admin_client.post("/console/connectors/new/generic-oidc/", {"name": "Wiki"})
    assert created.status_code == 200  # the secret page, not a redirect: it is shown once
    connector = Connector.objects.get(template="generic-oidc")
    secret = re.search(r'id="oidc-client-secret">([^<]+)<', created.content.decode()).group(1)
    assert (
        secret.startswith("idp_oidc_")
        and f"/console/connectors/{connector.slug}/oidc/?wizard=1" in created.content.decode()
    )
    assert secret not in admin_client.get(f"/console/connectors/{connector.slug}/oidc/").content.decode()

    tab = admin_client.get(f"/console/connectors/{connector.slug}/oidc/?wizard=1").content.decode()
    assert "Sign-in (OIDC)" in tab and connector.idp_entity_id in tab and connector.oidc.client_id in tab
    refused = admin_client.post(
        f"/console/connectors/{connector.slug}/oidc/?wizard=1", _oidc_post(redirect_uris="http://rp.example.com/cb")
    )
    assert refused.status_code == 400 and "must use https" in refused.content.decode()
    saved = admin_client.post(f"/console/connectors/{connector.slug}/oidc/?wizard=1", _oidc_post())
    assert saved["Location"] == f"/console/connectors/{connector.slug}/mappings/?wizard=1"

    mappings = admin_client.get(f"/console/connectors/{connector.slug}/mappings/?wizard=1").content.decode()
    assert "OIDC claims" in mappings and 'value="preferred_username"' in mappings
    admin_client.post(f"/console/connectors/{connector.slug}/assignments/?wizard=1", {"group": str(engineering.pk)})
    activate = admin_client.get(f"/console/connectors/{connector.slug}/activate/?wizard=1")
    assert activate.status_code == 200 and "Activate connector" in activate.content.decode()
    admin_client.post(f"/console/connectors/{connector.slug}/activate/", {"action": "activate"})
    overview = admin_client.get(f"/console/connectors/{connector.slug}/").content.decode()
    assert "OIDC tracer" in overview and "Sign-in (OIDC)" in overview
    assert "Wiki" in admin_client.get("/console/connectors/").content.decode()
    connector.refresh_from_db()
    assert connector.enabled

    admin_client.post(f"/console/connectors/{connector.slug}/oidc/tracer/start/", {"minutes": "15"})
    sign_in(client)
    rp = RelyingParty(client, connector, secret=secret)
    tokens = rp.tokens()
    assert rp.id_token_claims(tokens["id_token"])["preferred_username"] == "jane.doe"
    tracer = admin_client.get(f"/console/connectors/{connector.slug}/oidc/tracer/?user=jane.doe").content.decode()
    assert "Code issued" in tracer and "code_challenge_method" in tracer and "(not stored)" not in tracer
    assert "preferred_username" in tracer and "jane.doe@example.com" in tracer
    assert OidcTraceRecord.objects.filter(connector=connector).count() == 1

    rotated = admin_client.post(f"/console/connectors/{connector.slug}/oidc/secret/", {"overlap_hours": "1"})
    new_secret = re.search(r'id="oidc-client-secret">([^<]+)<', rotated.content.decode()).group(1)
    assert new_secret != secret and "keeps working until" in rotated.content.decode()
    newer = RelyingParty(client, connector, secret=new_secret)
    assert json.loads(newer.token(newer.code()).content)["id_token"]
