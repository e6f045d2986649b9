"""The SAML interoperability matrix: every SP in conftest's SP_FIXTURES against the portal's IdP,
for each flow a person goes through. The terminal summary prints the matrix (tests/interop/matrix.py).

The SPs are real (Apache + mod_auth_mellon, python3-saml, pysaml2), on loopback; their metadata was
imported into their connectors through the admin API with no setting changed by hand.
"""

import httpx
import pytest

from apps.connectors.saml_algorithms import DATA_ALGORITHMS, KEY_TRANSPORTS, SIGNATURE_ALGORITHMS, describe
from tests.interop.conftest import EXPECTED_ATTRIBUTES, SpUnderTest, portal_signed_in

pytestmark = pytest.mark.slow


def _algorithms(settings: dict) -> str:
    encryption = describe(
        encrypt=True, data_algorithm=settings["encryption_algorithm"], key_transport=settings["key_transport"]
    )
    digest = settings["digest_algorithm"] or settings["signature_algorithm"].removeprefix("rsa-")
    return f"assertion {encryption}; signature {settings['signature_algorithm'].upper()}, digest {digest.upper()}"


@pytest.fixture
def flow(request, record_property):
    """Names the matrix cell this test fills: record_property carries it to the terminal summary."""

    def name(sp: SpUnderTest, title: str) -> dict:
        settings = sp.connector_settings()
        record_property("sp", sp.name)
        record_property("flow", title)
        record_property("algorithms", _algorithms(settings))
        return settings

    return name


def _diagnose(sp: SpUnderTest, page: httpx.Response, browser) -> str:
    log = getattr(getattr(sp, "mellon", None), "error_log", lambda: "")()
    return f"ended at {page.url} ({page.status_code}): {page.text[:600]}\nhops: {browser.visited[-8:]}\n{log[-1500:]}"


def _last_event(sp: SpUnderTest, action: str) -> dict:
    events = sp.idp.api.get("/audit-events", params={"action": action, "target_id": sp.connector["id"]}).json()
    assert events["results"], f"the IdP audited no {action}"
    return events["results"][0]["after"]


def _last_sso_event(sp: SpUnderTest) -> dict:
    return _last_event(sp, "saml.sso.success")


def test_sp_initiated_sign_in_encrypted_as_negotiated(sp, browser, flow):
    settings = flow(sp, "sp-initiated, encrypted")
    # The import alone switched encryption on (the SP's metadata has an encryption certificate).
    assert settings["encrypt_assertions"] is True
    page = browser.get(sp.protected_url)
    assert sp.shows_protected_page(page), _diagnose(sp, page, browser)
    audited = _last_sso_event(sp)
    assert audited["encrypted"] is True
    assert audited["encryption"]["algorithm"] == settings["encryption_algorithm"]
    wire = sp.received_encryption()
    if wire is not None:
        assert wire["encrypted"]
        assert wire["data"] == DATA_ALGORITHMS[settings["encryption_algorithm"]]
        assert wire["key"] == KEY_TRANSPORTS[settings["key_transport"]]
        assert wire["signature"] == SIGNATURE_ALGORITHMS[settings["signature_algorithm"]]


def test_sp_initiated_sign_in_plain(sp, browser, flow):
    flow(sp, "sp-initiated, plain")
    sp.set_sso(encrypt_assertions=False)
    try:
        page = browser.get(sp.protected_url)
        assert sp.shows_protected_page(page), _diagnose(sp, page, browser)
        assert _last_sso_event(sp)["encrypted"] is False
        wire = sp.received_encryption()
        if wire is not None:
            assert not wire["encrypted"]
    finally:
        sp.set_sso(encrypt_assertions=True)


def test_idp_initiated_sign_in_from_the_launchpad(sp, browser, flow):
    flow(sp, "idp-initiated (launchpad)")
    launchpad = browser.sign_in_to_portal(sp.idp.base)
    page = browser.follow_link(launchpad, f"/saml/idp/{sp.slug}/launch")
    assert sp.shows_protected_page(page), _diagnose(sp, page, browser)
    assert _last_sso_event(sp)["flow"] == "idp"


def test_attributes_read_by_the_sp(sp, browser, flow):
    flow(sp, "attributes")
    page = browser.get(sp.protected_url)
    assert sp.shows_protected_page(page), _diagnose(sp, page, browser)
    assert sp.attributes(page) == EXPECTED_ATTRIBUTES


def test_single_logout_started_at_the_sp_ends_both_sessions(sp, browser, flow, record_property):
    flow(sp, "SLO from the SP")
    page = browser.get(sp.protected_url)
    assert sp.shows_protected_page(page), _diagnose(sp, page, browser)
    assert portal_signed_in(browser, sp.idp.base)

    done = sp.start_logout(browser)
    assert done.status_code < 400 or done.status_code == 404, _diagnose(sp, done, browser)
    logout = _last_event(sp, "saml.slo")
    record_property("detail", "SOAP" if logout["binding"].endswith(":SOAP") else logout["binding"].rsplit(":", 1)[-1])
    if not logout["binding"].endswith(":SOAP"):
        assert any("/saml/idp/" in url and "/slo" in url for url in browser.visited), browser.visited[-6:]

    assert not portal_signed_in(browser, sp.idp.base), "the portal session outlived the SP's logout"
    again = browser.client.get(sp.protected_url, follow_redirects=False)
    assert again.status_code in (302, 303), f"the SP still serves the protected page: {again.status_code}"
