from urllib.parse import urlsplit

import pytest

from apps.saml_sp import services
from tests.saml_sp.upstream import UpstreamIdP, redirect_query


@pytest.fixture
def upstream_idp():
    idp = UpstreamIdP()
    idp.start()
    yield idp
    idp.stop()


@pytest.fixture
def make_upstream(db, client, settings, upstream_idp):
    """An UpstreamIdentityProvider for the pysaml2 IdP, which in turn trusts our SP metadata."""
    settings.PORTAL_BASE_URL = "http://testserver"

    def build(**fields):
        fields.setdefault("metadata_xml", upstream_idp.metadata())
        upstream = services.upstream_create(
            actor=None, name=fields.pop("name", "Corp IdP"), slug=fields.pop("slug", "corp"), **fields
        )
        response = client.get(f"/saml/sp/{upstream.slug}/metadata/")
        assert response.status_code == 200, response.content[:300]
        upstream_idp.trust_sp(response.content.decode())
        return upstream

    return build


def sign_in_upstream(client, idp: UpstreamIdP, username: str, *, slug: str = "corp", next_url: str = "/account/"):
    """Portal -> upstream IdP -> portal ACS, with the Django test client. Returns the ACS response."""
    started = client.get(f"/saml/sp/{slug}/login/", {"next": next_url})
    assert started.status_code == 302, started.content[:300]
    assert started["Location"].startswith(f"{idp.base}/sso?")
    query = redirect_query(started["Location"])
    acs, fields = idp.answer(query["SAMLRequest"], query.get("RelayState", ""), username)
    return client.post(urlsplit(acs).path, fields), fields
