"""The portal as an SP of another portal: a second instance (gunicorn on 127.0.0.2, its own database)
whose delegated login (djangosaml2, apps.saml_sp) signs in through the matrix's IdP portal.

It is set up as two admins would: on the IdP, a `generic-saml` connector whose IdP metadata is given
to the SP portal with its `upstream_idp` command; on the SP portal, an upstream that creates people
just in time from the email, first and last name attributes, takes their groups from `groups`
(creating the groups it lacks), accepts sign-ins started at the IdP and is the only way in; the SP
portal's metadata (fetched from its URL) imported into the connector through the IdP's API.

A second loopback address keeps the two portals' cookies apart, as two hosts would.
"""

from urllib.parse import urljoin

import httpx
from lxml import html

from tests.interop.browser import Browser
from tests.interop.conftest import EXPECTED_ATTRIBUTES, SpUnderTest, _ok
from tests.interop.servers import PortalInstance

UPSTREAM_SLUG = "interop-idp"


class PortalSpUnderTest(SpUnderTest):
    name = "djangosaml2 (portal delegated login)"

    def __init__(self, idp: PortalInstance, connector: dict, sp_portal: PortalInstance) -> None:
        super().__init__(idp, connector)
        self.sp_portal = sp_portal
        self.protected_url = f"{sp_portal.base}/account/"

    def shows_protected_page(self, page: httpx.Response) -> bool:
        return page.status_code == 200 and str(page.url) == self.protected_url and "jane.interop@" in page.text

    def attributes(self, page: httpx.Response) -> dict[str, list[str]]:
        """What the SP portal's directory holds for the person now (its admin API)."""
        found = _ok(self.sp_portal.api.get("/users", params={"email": "jane.interop@example.com"}))["results"]
        assert len(found) == 1, found
        user = found[0]
        read = {
            "email": [user["email"]],
            "firstName": [user["first_name"]],
            "lastName": [user["last_name"]],
            "groups": sorted(group["name"] for group in user["groups"]),
        }
        return {name: read[name] for name in EXPECTED_ATTRIBUTES}

    def start_logout(self, browser: Browser) -> httpx.Response:
        """The SP portal's own sign-out: its confirmation page, then the button (a POST with CSRF)."""
        confirm = browser.get(f"{self.sp_portal.base}/logout/", sign_in=False)
        form = next(form for form in html.fromstring(confirm.content).forms if form.method.lower() == "post")
        fields = {name: value for name, value in form.form_values()}
        return browser.submit(urljoin(str(confirm.url), form.action), fields)

    def received_encryption(self) -> dict | None:
        """What the SP portal audited about the last Response it accepted."""
        events = _ok(self.sp_portal.api.get("/audit-events", params={"action": "saml_sp.response"}))["results"]
        return events[0]["after"]["wire"] if events else None


def start_sp_portal(idp: PortalInstance, connector: dict, tmp_dir) -> PortalInstance:
    sp_portal = PortalInstance("sp", "127.0.0.2")
    migration = sp_portal.migrate()
    assert migration.wait(timeout=300) == 0, sp_portal.log_tail()
    sp_portal.start()
    metadata = httpx.get(f"{idp.base}/saml/idp/{connector['slug']}/metadata", timeout=10)
    assert metadata.status_code == 200
    metadata_file = tmp_dir / "idp-metadata.xml"
    metadata_file.write_bytes(metadata.content)
    added = sp_portal.manage(
        "upstream_idp", "add", "Interop IdP portal", "--slug", UPSTREAM_SLUG,
        "--metadata-file", str(metadata_file),
        "--match", "email", "--match-attribute", "email", "--jit",
        "--map", "email=email", "--map", "first_name=firstName", "--map", "last_name=lastName",
        "--groups-attribute", "groups", "--groups-sync", "create_missing",
        "--accept-idp-initiated", "--enforced",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr[-2000:]
    return sp_portal


def sp_portal_metadata(sp_portal: PortalInstance) -> bytes:
    response = httpx.get(f"{sp_portal.base}/saml/sp/{UPSTREAM_SLUG}/metadata/", timeout=10)
    assert response.status_code == 200, response.text[:500]
    return response.content
