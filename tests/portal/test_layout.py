"""The frame every page shares (issue 14): a favicon that answers, and an end-user header that says
whose session it is and how to end it."""

import re

import pytest
from django.contrib.staticfiles import finders
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.console.conftest import console_client, make_staff
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db


def test_favicon_ico_answers_with_an_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content).startswith(b"\x00\x00\x01\x00")  # the ICO header
    assert "max-age=86400" in response["Cache-Control"]


def _icons(html: str) -> list[str]:
    return re.findall(r'<link rel="(?:alternate )?icon" href="([^"]+)"', html)


def test_both_base_templates_link_an_icon_that_exists(client, jane):
    staff = make_staff("super_admin")
    pages = [client.get("/login/").content.decode(), console_client(staff).get("/console/").content.decode()]
    for html in pages:
        icons = _icons(html)
        assert "/favicon.ico" in icons
        svg = next(icon for icon in icons if icon.endswith(".svg"))
        assert finders.find(svg.removeprefix("/static/")) is not None


def test_the_end_user_header_names_the_product_the_person_and_sign_out(client, jane, totp_device):
    from tests.portal.conftest import totp_code

    sign_in(client)
    client.post("/login/mfa/", {"code": totp_code(totp_device)})
    header = re.search(r"<header.*?</header>", client.get("/").content.decode(), re.S).group(0)
    assert "idp-portal" in header
    assert "Jane Doe" in header
    assert 'href="/logout/"' in header and "Sign out" in header
    assert 'href="/" aria-current="page">My apps' in header
    assert 'href="/account/">Profile' in header
    assert "Console" not in header  # not staff


def test_the_sign_in_page_header_has_no_account_links(client):
    header = re.search(r"<header.*?</header>", client.get("/login/").content.decode(), re.S).group(0)
    assert "idp-portal" in header
    assert "Sign out" not in header


def test_staff_see_the_console_link_in_the_header(db):
    staff = make_staff("admin")
    assert TOTPDevice.objects.filter(user=staff).exists()
    header = re.search(r"<header.*?</header>", console_client(staff).get("/account/").content.decode(), re.S).group(0)
    assert 'href="/console/">Console' in header


def test_recovery_codes_can_be_copied_and_downloaded_as_text(client, jane, totp_device):
    from urllib.parse import unquote

    from tests.portal.conftest import totp_code

    sign_in(client)
    client.post("/login/mfa/", {"code": totp_code(totp_device)})
    html = client.post("/account/mfa/recovery-codes/").content.decode()
    codes = re.findall(r"<li><code>([^<]+)</code></li>", html)
    assert len(codes) >= 8
    link = re.search(
        r'<a class="button button-secondary" download="([^"]+)" href="data:text/plain;charset=utf-8,([^"]+)"', html
    )
    assert link and link.group(1) == "idp-portal-recovery-codes.txt"
    text = unquote(link.group(2))
    assert text.startswith("idp-portal recovery codes for jane.doe\n")
    assert text.splitlines()[-len(codes) :] == codes
    assert 'data-copy-codes="recovery-codes"' in html
    assert re.search(r'<script src="/static/portal/recovery_codes\.js" defer></script>', html)
    assert "<script>" not in html and " onclick=" not in html
