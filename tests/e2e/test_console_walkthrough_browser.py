"""The console walk-through (issue 14): a super-admin signs in with a password and an authenticator
code like a person, then Chromium opens every console page, at 1280x800 and at 390x844.

Every page is checked at both sizes: the document never scrolls sideways, the connector tabs stay on
one line, no date or time is broken across lines, a URL breaks only after a slash, the fields and
buttons of a filter bar line up, and nothing the page loads answers an error (the favicon included).
At 1280 pixels no table needs scrolling sideways either. With SCREENSHOTS=1 (`make screenshots`) each
page is also saved as docs/screenshots/<page>-<width>.png, the pictures the README shows.

The pages come from the console's URLconf, as tests/console/test_guards.py walks it: a page added
to the console without a place here fails this test until it is visited or named as a non-page.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.connectors.models import Connector
from tests.e2e.demo_directory import ADMIN_USERNAME, PASSWORD, DemoDirectory, seed_demo_directory
from tests.portal.browser import chromium
from tests.portal.conftest import totp_code

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run does)"),
]

SCREENSHOT_DIR = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"
SIZES = ((1280, 800), (390, 844))

# Console URLs that are not pages a person looks at: form posts that redirect, downloads, and the
# fragments htmx swaps into a page (each is shown inside the page it belongs to).
NOT_PAGES = {
    "user_suspend": "POST only",
    "user_reactivate": "POST only",
    "user_mfa_reset": "POST only",
    "user_unlock": "POST only",
    "group_member_search": "htmx fragment of the group page",
    "user_manager_search": "htmx fragment of the user form (the manager picker)",
    "user_manager_choice": "htmx fragment of the user form (the manager picker)",
    "group_member_add": "POST only",
    "group_member_remove": "POST only",
    "group_import": "POST only",
    "group_import_status": "htmx fragment of the group page",
    "group_rule_preview": "htmx fragment of the rule editor",
    "group_rule_delete": "POST only",
    "connector_sp_metadata": "POST only",
    "connector_test_connection": "POST only",
    "connector_apply_fix": "POST only",
    "connector_assignment_remove": "POST only",
    "connector_provisioning_counts": "htmx fragment of the Provisioning tab",
    "connector_sync": "POST only",
    "connector_retry": "POST only",
    "connector_pause": "POST only",
    "connector_resume": "POST only",
    "connector_hold_decide": "POST only",
    "connector_tracer_preview": "htmx fragment of the tracer tab",
    "connector_tracer_start": "POST only",
    "connector_tracer_stop": "POST only",
    "connector_tracer_clear": "POST only",
    "key_certificate": "a .pem download",
    "audit_export": "a CSV download",
    "user_export": "a CSV download",
    "audit_export_jsonl": "a JSON Lines download",
    "settings_sp_key_next": "POST only",
    "settings_sp_key_rotate": "POST only",
    "settings_sp_key_certificate": "a .pem download",
    "connector_oidc_secret_rotate": "POST only",
    "connector_oidc_tracer_action": "POST only",
}
# The end user's pages that share the portal's header, checked and pictured alongside.
PORTAL_PAGES = [("portal_launchpad", "", "/"), ("portal_profile", "", "/account/")]
# Connector pages that only some kinds have (the others answer 404).
_NEEDS_SSO = {"connector_sso", "connector_tracer"}
_NEEDS_PROVISIONING = {"connector_identity", "connector_provisioning", "connector_preview"}
_NEEDS_EITHER = {"connector_mappings"}
_NEEDS_OIDC = {"connector_oidc", "connector_oidc_tracer"}

# What every page must hold at every size; returns the problems found, in words.
PAGE_CHECKS = """() => {
  const problems = [];
  const width = window.innerWidth;
  const root = document.documentElement;
  if (root.scrollWidth > width + 1) {
    const clipped = e => {
      for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== 'visible') return true;
      }
      return false;
    };
    const wide = [...document.querySelectorAll('body *')]
      .filter(e => e.getBoundingClientRect().right > width + 1 && !clipped(e))
      .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > width + 1))
      .concat([...document.querySelectorAll('body *')].filter(e => !clipped(e) && [...e.childNodes].some(n => {
        if (n.nodeType !== 3 || !n.textContent.trim()) return false;
        const range = document.createRange(); range.selectNodeContents(n);
        return range.getBoundingClientRect().right > width + 1; })))
      .slice(0, 4)
      .map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ').join('.') : '')
                + ' ' + JSON.stringify((e.textContent || '').trim().slice(0, 40)));
    problems.push(`the page is ${root.scrollWidth}px wide in a ${width}px window: ${wide.join(', ')}`);
  }
  const tabs = document.querySelector('.c-tabs');
  if (tabs) {
    const tops = new Set([...tabs.querySelectorAll('a')].map(a => Math.round(a.getBoundingClientRect().top)));
    if (tops.size > 1) problems.push(`the connector tabs wrap onto ${tops.size} lines`);
    if (width >= 1280 && tabs.scrollWidth > tabs.clientWidth + 1) problems.push('the tabs do not fit at 1280px');
  }
  if (width >= 1280) {
    for (const wrap of document.querySelectorAll('.c-table-wrap')) {
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        const heading = wrap.closest('section, main').querySelector('h1, h2');
        problems.push(`a table scrolls sideways at 1280px (${wrap.scrollWidth}px in ${wrap.clientWidth}px)`
                      + (heading ? ` under "${heading.textContent.trim()}"` : ''));
      }
    }
  }
  for (const toolbar of document.querySelectorAll('.c-toolbar')) {
    const middles = [...toolbar.querySelectorAll('input:not([type=hidden]), select, button, a.c-btn')]
      .filter(control => control.getClientRects().length)
      .map(control => { const box = control.getBoundingClientRect(); return box.top + box.height / 2; })
      .sort((a, b) => a - b);
    for (let i = 1; i < middles.length; i++) {
      const apart = middles[i] - middles[i - 1];
      if (apart >= 2 && apart < 40) problems.push(`filters out of line by ${Math.round(apart)}px`);
    }
  }
  for (const time of document.querySelectorAll('time')) {
    const lines = time.getClientRects().length;
    if (lines > 1) problems.push(`a date is broken across ${lines} lines: ${time.textContent.trim()}`);
  }
  for (const part of document.querySelectorAll('.c-url > span')) {
    if (part.getClientRects().length > 1) problems.push(`a URL breaks inside "${part.textContent}"`);
  }
  return problems;
}"""


def _console_patterns():
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == "console":
            yield from _walk(entry.url_patterns)


def _walk(patterns):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns)
        elif isinstance(entry, URLPattern):
            yield entry


def _connector_has(connector: Connector, name: str) -> bool:
    if name in _NEEDS_SSO:
        return connector.has_sso
    if name in _NEEDS_PROVISIONING:
        return connector.has_provisioning
    if name in _NEEDS_EITHER:
        return connector.has_sso or connector.has_provisioning or connector.has_oidc
    if name in _NEEDS_OIDC:
        return connector.has_oidc
    return True


def console_pages(demo: DemoDirectory) -> list[tuple[str, str, str]]:
    """(URL name, variant, path) of every console page, ids filled from the demo directory.

    A connector's pages are visited for a connector of each kind (the variant is its template)."""
    user = demo.people["alan.turing"]
    arguments = {
        "pk": {
            "user": str(user.pk),
            "group": str(demo.groups["Engineering"].pk),
            "scim_token": demo.scim_token_id,
            "api_token": demo.api_token_id,
            "settings_upstream": str(demo.upstream.pk),
            "custom_attribute": str(demo.custom_attribute.pk),
        },
    }
    pages: list[tuple[str, str, str]] = []
    for pattern in _console_patterns():
        name = pattern.name
        if name in NOT_PAGES:
            continue
        parameters = set(pattern.pattern.converters) | set(pattern.pattern.regex.groupindex)
        if not parameters:
            pages.append((name, "", reverse(f"console:{name}")))
        elif parameters == {"template"}:
            for template in demo.connectors:
                pages.append((name, template, reverse(f"console:{name}", args=[template])))
        elif parameters == {"slug"}:
            for template, slug in demo.connectors.items():
                if _connector_has(Connector.objects.get(slug=slug), name):
                    pages.append((name, template, reverse(f"console:{name}", args=[slug])))
        elif parameters == {"pk"}:
            owner = next(prefix for prefix in arguments["pk"] if name.startswith(prefix))
            pages.append((name, "", reverse(f"console:{name}", args=[arguments["pk"][owner]])))
        else:
            pytest.fail(f"console:{name} is a new kind of page: give the walk-through its ids or add it to NOT_PAGES")
    return pages


def _sign_in(page, base: str, demo: DemoDirectory) -> None:
    """The sign-in a person does: username and password, then the code from the authenticator app."""
    page.goto(f"{base}/console/")
    page.get_by_label("Username or email").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Authentication code").fill(totp_code(demo.device))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/console/$"))


def save_screenshot(page, path: Path) -> None:
    """What the window shows, in 64 colours: a tenth of the bytes, and the text as sharp."""
    from PIL import Image

    page.screenshot(path=str(path))
    with Image.open(path) as picture:
        reduced = picture.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    reduced.save(path, optimize=True)


@pytest.fixture
def walkthrough_env(live_server, settings, monkeypatch):
    # The IdP URLs are fixed from PORTAL_BASE_URL when a connector is created: the live server's.
    settings.PORTAL_BASE_URL = live_server.url
    # Playwright's sync API keeps an event loop in this thread; ORM calls are made between its calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return live_server


def test_every_console_page_at_laptop_and_phone_width(walkthrough_env):
    demo = seed_demo_directory()
    base = walkthrough_env.url
    pages = console_pages(demo)
    assert len(pages) > 50
    save = os.environ.get("SCREENSHOTS") == "1"
    if save:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(20000)
        failed_loads: list[str] = []
        page.on("response", lambda response: response.status >= 400 and failed_loads.append(response.url))
        _sign_in(page, base, demo)
        assert not failed_loads, f"signing in failed to load {failed_loads}"

        problems: dict[str, list[str]] = {}
        pictured: set[str] = set()
        for name, variant, path in [*pages, *PORTAL_PAGES]:
            failed_loads.clear()
            page.set_viewport_size({"width": 1280, "height": 800})
            response = page.goto(f"{base}{path}")
            assert response.status == 200, f"{path} answered {response.status}"
            assert page.url == f"{base}{path}", f"{path} went to {page.url}"
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                found = page.evaluate(PAGE_CHECKS)
                if failed_loads:
                    found.append(f"failed to load: {', '.join(sorted(set(failed_loads)))}")
                if found:
                    problems[f"{name} {variant} at {width}px ({path})"] = found
                if save and name not in pictured:
                    save_screenshot(page, SCREENSHOT_DIR / f"{name}-{width}.png")
            pictured.add(name)
        context.close()

    assert not problems, "\n".join(f"{where}: {'; '.join(found)}" for where, found in problems.items())


def test_recovery_codes_a_failed_save_and_unsaved_mapping_in_the_browser(walkthrough_env):
    """Recovery codes copy and download; a failed SSO save opens on its error summary, whose link
    goes to the field; leaving the mapping tab with unsaved edits asks: discard, or save and go on."""
    demo = seed_demo_directory()
    base = walkthrough_env.url
    twingate = Connector.objects.get(slug=demo.connectors["twingate"])
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = context.new_page()
        page.set_default_timeout(20000)
        _sign_in(page, base, demo)

        # Recovery codes: copied one a line, and downloaded as a text file.
        page.goto(f"{base}/account/")
        page.get_by_role("button", name="New recovery codes").click()
        codes = [code.strip() for code in page.locator("#recovery-codes code").all_inner_texts()]
        assert len(codes) >= 8
        page.get_by_role("button", name="Copy the codes").click()
        page.get_by_text(f"Copied {len(codes)} codes.").wait_for()
        assert page.evaluate("navigator.clipboard.readText()").split() == codes
        with page.expect_download() as download:
            page.get_by_role("link", name="Download as a text file").click()
        assert download.value.suggested_filename == "idp-portal-recovery-codes.txt"
        saved = Path(download.value.path()).read_text()
        assert all(f"\n{code}\n" in saved for code in codes) and ADMIN_USERNAME in saved

        # A failed SSO save: the summary is what the page opens on, and its link leads to the field.
        page.goto(f"{base}/console/connectors/{twingate.slug}/sso/")
        page.get_by_label("ACS URL 1", exact=True).fill("http://acme.twingate.com/auth/saml/callback")
        page.get_by_role("button", name="Save SSO settings").click()
        summary = page.locator("[data-error-summary]")
        summary.wait_for()
        assert page.evaluate("document.activeElement.hasAttribute('data-error-summary')")
        box = summary.bounding_box()
        assert 0 <= box["y"] < 800
        summary.get_by_role("link", name=re.compile("https")).click()
        assert page.evaluate("document.activeElement.id") == "id_acs-0-url"

        # The mapping tab: leaving with an unsaved edit asks first.
        saved_targets = list(twingate.mappings.filter(kind="scim_user").values_list("target", flat=True))
        page.goto(f"{base}/console/connectors/{twingate.slug}/mappings/?wizard=1")
        page.get_by_label("SCIM user attributes row 6: app attribute").fill("title")
        page.get_by_role("link", name=re.compile("Skip to Assignments")).click()
        dialog = page.get_by_role("dialog", name="You have unsaved changes")
        dialog.wait_for()
        dialog.get_by_role("link", name="Discard changes").click()
        page.wait_for_url(re.compile(r"/assignments/\?wizard=1$"))
        assert list(twingate.mappings.filter(kind="scim_user").values_list("target", flat=True)) == saved_targets

        page.goto(f"{base}/console/connectors/{twingate.slug}/mappings/")
        page.get_by_label("SCIM user attributes row 6: app attribute").fill("title")
        page.get_by_label("SAML attributes row 1: app attribute").fill("mail")
        page.get_by_role("navigation", name="Connector sections").get_by_role("link", name="Activation").click()
        page.get_by_role("dialog", name="You have unsaved changes").get_by_role(
            "button", name="Save and continue"
        ).click()
        page.wait_for_url(re.compile(r"/activate/$"))
        assert "title" in twingate.mappings.filter(kind="scim_user").values_list("target", flat=True)
        assert twingate.mappings.filter(kind="saml", target="mail").exists()
        context.close()
