"""The interoperability matrix's peers: the portal as the IdP (a gunicorn process on its own
database, driven only through its admin API and a browser), and each SP running for real on
loopback, set up as an admin would: a connector from the catalog, the IdP's metadata given to the
SP, the SP's own metadata imported into the connector through the API.

Everything here is session-scoped: servers start once per test process and the flows reuse them.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from apps.saml_idp.keys import generate_key_pair
from tests.interop.apache_mellon import MellonSP, mellon_available
from tests.interop.browser import Browser
from tests.interop.servers import PortalInstance
from tests.interop.sp_apps import OneLoginApp, Pysaml2App

PASSWORD = "Interop-Pass-2026!"
SAML_MAPPINGS = [
    {"source": "email", "target": "email", "name_format": "basic"},
    {"source": "first_name", "target": "firstName", "name_format": "basic"},
    {"source": "last_name", "target": "lastName", "name_format": "basic"},
    {"source": "groups", "target": "groups", "name_format": "basic"},
]
EXPECTED_ATTRIBUTES = {
    "email": ["jane.interop@example.com"],
    "firstName": ["Jane"],
    "lastName": ["Interop"],
    "groups": ["Engineering", "Interop Testers"],
}


def _ok(response: httpx.Response, *codes: int) -> dict:
    assert response.status_code in (codes or (200,)), (response.request.url, response.status_code, response.text[:800])
    return response.json() if response.content else {}


@dataclass
class Directory:
    username: str
    email: str
    group_ids: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def idp_portal(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        portal = PortalInstance("idp", "127.0.0.1")
    try:
        migration = portal.migrate()
        assert migration.wait(timeout=300) == 0, portal.log_tail()
        portal.start()
        yield portal
    finally:
        portal.stop()


@pytest.fixture(scope="session")
def directory(idp_portal) -> Directory:
    """One person in two groups, created through the admin API."""
    api = idp_portal.api
    user = _ok(
        api.post(
            "/users",
            json={
                "username": "jane.interop",
                "email": "jane.interop@example.com",
                "first_name": "Jane",
                "last_name": "Interop",
                "password": PASSWORD,
                # A person's own password, not a temporary one an admin hands out (issue 14).
                "password_temporary": False,
            },
        ),
        201,
    )
    groups = []
    for name in ("Engineering", "Interop Testers"):
        group = _ok(api.post("/groups", json={"name": name}), 201)
        _ok(api.post(f"/groups/{group['id']}/members", json={"user": user["id"]}), 200, 201)
        groups.append(group["id"])
    return Directory(username="jane.interop", email="jane.interop@example.com", group_ids=groups)


class SpUnderTest:
    """What the matrix needs from an SP: where its pages are and how to read them."""

    name = ""

    def __init__(self, idp: PortalInstance, connector: dict) -> None:
        self.idp = idp
        self.connector = connector

    @property
    def slug(self) -> str:
        return self.connector["slug"]

    def connector_settings(self) -> dict:
        return _ok(self.idp.api.get(f"/connectors/{self.connector['id']}"))["sso"]

    def set_sso(self, **changes) -> dict:
        return _ok(self.idp.api.patch(f"/connectors/{self.connector['id']}", json={"sso": changes}))["sso"]

    # Per SP:
    protected_url = ""

    def attributes(self, page: httpx.Response) -> dict[str, list[str]]:
        raise NotImplementedError

    def shows_protected_page(self, page: httpx.Response) -> bool:
        raise NotImplementedError

    def start_logout(self, browser: Browser) -> httpx.Response:
        raise NotImplementedError

    def received_encryption(self) -> dict | None:
        """What the last Response that reached the SP showed on the wire (None: not observable)."""
        return None


def _connector(idp: PortalInstance, directory: Directory, name: str, slug: str) -> dict:
    api = idp.api
    connector = _ok(api.post("/connectors", json={"template": "generic-saml", "name": name, "slug": slug}), 201)
    _ok(api.put(f"/connectors/{connector['id']}/mappings", json={"kind": "saml", "rows": SAML_MAPPINGS}))
    _ok(api.post(f"/connectors/{connector['id']}/assignments", json={"group": directory.group_ids[0]}), 201)
    return connector


def _idp_metadata(idp: PortalInstance, connector: dict) -> bytes:
    response = httpx.get(f"{idp.base}/saml/idp/{connector['slug']}/metadata", timeout=10)
    assert response.status_code == 200
    return response.content


def _import_sp_metadata(idp: PortalInstance, connector: dict, metadata: bytes) -> dict:
    """The admin API's import, exactly as an admin would POST the SP's metadata file."""
    response = idp.api.post(
        f"/connectors/{connector['id']}/sp-metadata", content=metadata, headers={"Content-Type": "application/xml"}
    )
    connector = _ok(response)
    return _ok(idp.api.patch(f"/connectors/{connector['id']}", json={"enabled": True}))


# --- Apache + mod_auth_mellon -------------------------------------------------------------------


class MellonUnderTest(SpUnderTest):
    name = "mod_auth_mellon"

    def __init__(self, idp, connector, mellon: MellonSP) -> None:
        super().__init__(idp, connector)
        self.mellon = mellon
        self.protected_url = mellon.protected_url

    def shows_protected_page(self, page: httpx.Response) -> bool:
        return page.status_code == 200 and str(page.url) == self.protected_url and "MELLON_NAME_ID=" in page.text

    def attributes(self, page: httpx.Response) -> dict[str, list[str]]:
        values = dict(line.split("=", 1) for line in page.text.splitlines() if "=" in line)
        return {
            name: sorted(values.get(f"MELLON_{name}", "").split(";")) if values.get(f"MELLON_{name}") else []
            for name in EXPECTED_ATTRIBUTES
        }

    def start_logout(self, browser: Browser) -> httpx.Response:
        return browser.get(f"{self.mellon.base}/mellon/logout?ReturnTo={self.mellon.base}/", sign_in=False)


@pytest.fixture(scope="session")
def mellon_sp(idp_portal, directory):
    if not mellon_available():
        pytest.skip("apache2 and libapache2-mod-auth-mellon are not installed (make system-deps, .ci/run)")
    connector = _connector(idp_portal, directory, "Apache mellon", "mellon")
    keys = generate_key_pair(key_size=2048, validity_days=30, common_name="mellon SP")
    mellon = MellonSP(private_key_pem=keys.private_key_pem, certificate_pem=keys.certificate_pem)
    try:
        mellon.start(_idp_metadata(idp_portal, connector))
        connector = _import_sp_metadata(idp_portal, connector, mellon.metadata())
        # IdP-initiated sign-in lands on the protected page (RelayState is a relative path).
        idp_portal.api.patch(
            f"/connectors/{connector['id']}", json={"sso": {"default_relay_state": "/protected/whoami"}}
        )
        yield MellonUnderTest(idp_portal, connector, mellon)
    finally:
        mellon.stop()


# --- python3-saml and pysaml2 -------------------------------------------------------------------


class PythonSpUnderTest(SpUnderTest):
    def __init__(self, idp, connector, app) -> None:
        super().__init__(idp, connector)
        self.app = app
        self.name = app.name
        self.protected_url = app.protected_url

    def shows_protected_page(self, page: httpx.Response) -> bool:
        return page.status_code == 200 and str(page.url) == self.protected_url and "attributes" in page.text

    def attributes(self, page: httpx.Response) -> dict[str, list[str]]:
        found = json.loads(page.text)["attributes"]
        return {name: sorted(found.get(name, [])) for name in EXPECTED_ATTRIBUTES}

    def start_logout(self, browser: Browser) -> httpx.Response:
        return browser.get(f"{self.app.base}/logout", sign_in=False)

    def received_encryption(self) -> dict | None:
        return self.app.received[-1] if self.app.received else None


def _python_sp(idp_portal, directory, app, name: str, slug: str):
    connector = _connector(idp_portal, directory, name, slug)
    app.start()
    try:
        app.configure(_idp_metadata(idp_portal, connector))
        connector = _import_sp_metadata(idp_portal, connector, app.metadata())
        yield PythonSpUnderTest(idp_portal, connector, app)
    finally:
        app.stop()


@pytest.fixture(scope="session")
def onelogin_sp(idp_portal, directory):
    yield from _python_sp(idp_portal, directory, OneLoginApp(), "python3-saml app", "onelogin")


@pytest.fixture(scope="session")
def pysaml2_sp(idp_portal, directory):
    yield from _python_sp(idp_portal, directory, Pysaml2App(), "pysaml2 app", "pysaml2")


SP_FIXTURES = {"mod_auth_mellon": "mellon_sp", "python3-saml": "onelogin_sp", "pysaml2": "pysaml2_sp"}


@pytest.fixture(params=list(SP_FIXTURES))
def sp(request) -> SpUnderTest:
    return request.getfixturevalue(SP_FIXTURES[request.param])


@pytest.fixture
def browser(directory):
    browser = Browser(username=directory.username, password=PASSWORD)
    yield browser
    browser.close()


def portal_signed_in(browser: Browser, portal_base: str) -> bool:
    """Whether the browser still has a portal session (the launchpad, not the sign-in page)."""
    response = browser.client.get(f"{portal_base}/", follow_redirects=False)
    return response.status_code == 200


def same_origin(url: str, base: str) -> bool:
    return urlsplit(url)[:2] == urlsplit(base)[:2]
