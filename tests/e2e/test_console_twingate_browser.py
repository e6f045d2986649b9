"""A new admin in Chromium walks the seed's Twingate flow through the console (issue 7):

sign in (enrolling an authenticator on the way), create Twingate from the catalog, upload its SP
metadata, point Identity Management at a real scim2-server with its token, test the connection,
assign a group, preview, activate, and watch the users arrive downstream and show as synced in the
Provisioning tab. A real Celery worker does the pushing. Screenshots of each step go to
test-artifacts/console-twingate-*.png.
"""

import base64
import re
import shutil

import pytest
from django_otp.oath import totp

from apps.connectors.models import Connector
from apps.directory import services as directory
from apps.directory.models import AdminRole
from apps.provisioning.models import RemoteObject, SyncStatus
from tests.conftest import wait_for
from tests.factories import GroupFactory, UserFactory
from tests.portal.browser import chromium, screenshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run does)"),
]
PASSWORD = "s3cret-Pass-99"
SP_ENTITY_ID = "https://acme.twingate.com/auth/saml/metadata"
ACS_URL = "https://acme.twingate.com/auth/saml/callback"
SP_METADATA = f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP_ENTITY_ID}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="false">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:AssertionConsumerService index="0"
        Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS_URL}"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""


def _code_for(secret_base32: str) -> str:
    padded = secret_base32 + "=" * (-len(secret_base32) % 8)
    return f"{totp(base64.b32decode(padded)):06d}"


@pytest.fixture
def console_env(live_server, settings, monkeypatch):
    # The IdP URLs are fixed from PORTAL_BASE_URL when a connector is created: the live server's.
    settings.PORTAL_BASE_URL = live_server.url
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return live_server


def test_new_admin_connects_twingate_and_users_arrive_downstream(
    console_env,
    scim_downstream,
    celery_worker_process,
    tmp_path,
):
    admin = UserFactory(username="new.admin", email="new.admin@example.com", password=PASSWORD)
    directory.user_set_admin_role(actor=None, user=admin, role=AdminRole.SUPER_ADMIN)
    engineering = GroupFactory(name="Engineering")
    people = [UserFactory(username=f"eng{n}", email=f"eng{n}@example.com") for n in range(3)]
    directory.group_add_members(actor=None, group=engineering, users=people)
    metadata_file = tmp_path / "twingate-sp-metadata.xml"
    metadata_file.write_text(SP_METADATA)
    base = console_env.url

    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(45000)

        # 1. Sign in: password, then the authenticator every admin must have.
        page.goto(f"{base}/console/")
        page.get_by_label("Username or email").fill("new.admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        screenshot(page, "console-twingate-01-enrol-mfa")
        page.get_by_label("Code from the app").fill(_code_for(secret))
        page.get_by_role("button", name=re.compile("Confirm|Verify|Turn on|Continue", re.I)).first.click()
        page.get_by_role("link", name=re.compile("continue", re.I)).click()
        page.wait_for_url(re.compile(r"/console/$"))
        assert page.get_by_role("heading", name="Dashboard").is_visible()
        screenshot(page, "console-twingate-02-dashboard")

        # 2. The catalog: find Twingate and add it.
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Connectors").click()
        page.goto(f"{base}/console/connectors/catalog/")
        page.get_by_label("Search the catalog").fill("twin")
        page.get_by_role("link", name="Add Twingate").click()
        screenshot(page, "console-twingate-03-general")
        page.get_by_label("Display label").fill("Twingate")
        page.get_by_role("button", name="Create and continue").click()
        connector = Connector.objects.get(name="Twingate")

        # 3. SSO: the IdP values to copy are shown; the app's SP metadata fills the rest.
        assert page.locator("#idp-entity-id").inner_text().strip() == connector.idp_entity_id
        assert page.locator("#idp-sso-url").inner_text().strip() == connector.sso_url
        page.get_by_label("SP metadata file (XML)").set_input_files(str(metadata_file))
        page.get_by_role("button", name="Import SP metadata").click()
        assert page.get_by_label("SP entity ID").input_value() == SP_ENTITY_ID
        assert page.get_by_label("ACS URL 1", exact=True).input_value() == ACS_URL
        screenshot(page, "console-twingate-04-sso")
        page.get_by_role("button", name="Save and continue").click()

        # 4. Identity Management: the scim2-server downstream, its token, and a connection test.
        page.get_by_label("Identity Management on (provision users and groups over SCIM)").check()
        page.get_by_label("SCIM base URL").fill(scim_downstream.base_url)
        page.get_by_label("Bearer token").fill(scim_downstream.token)
        page.get_by_label("Rate limit (requests per second)").fill("0")
        page.get_by_role("button", name="Test connection").click()
        result = page.locator("#probe-result")
        result.get_by_text(re.compile("connected|reachable|works", re.I)).first.wait_for()
        screenshot(page, "console-twingate-05-identity-management")
        page.get_by_role("button", name="Save and continue").click()
        assert scim_downstream.token not in page.content()

        # 5. Attribute mapping: the seed's defaults, kept.
        assert page.get_by_label("App attribute").first.input_value()
        screenshot(page, "console-twingate-06-mapping")
        page.get_by_role("button", name="Save and continue to Assignments").click()

        # 6. Assignments: the Engineering group.
        page.get_by_label("Find users and groups").fill("Engin")
        page.get_by_role("button", name="Find").click()
        page.get_by_role("button", name="Assign group Engineering").click()
        page.get_by_role("button", name="Remove Engineering").wait_for()
        screenshot(page, "console-twingate-07-assignments")

        # 7. Preview what a sync would send: the three engineers, nothing sent yet.
        page.goto(f"{base}/console/connectors/{connector.slug}/provisioning/preview/")
        for person in people:
            assert page.get_by_text(person.username).first.is_visible()
        screenshot(page, "console-twingate-08-preview")
        assert scim_downstream.users() == []

        # 8. Activate, then the Provisioning tab shows them synced.
        page.goto(f"{base}/console/connectors/{connector.slug}/activate/")
        screenshot(page, "console-twingate-09-activate")
        page.get_by_role("button", name="Activate connector").click()

        def all_downstream():
            names = {user["userName"] for user in scim_downstream.users()}
            return names >= {person.username for person in people}

        wait_for(all_downstream, timeout=60, message="the engineers in scim2-server")
        wait_for(
            lambda: (
                RemoteObject.objects.filter(connector=connector, object_type="user", status=SyncStatus.SYNCED).count()
                == len(people)
            ),
            timeout=60,
            message="synced state recorded",
        )
        page.goto(f"{base}/console/connectors/{connector.slug}/provisioning/")
        rows = page.locator("table").filter(has_text="eng0")
        rows.get_by_text(re.compile("synced", re.I)).first.wait_for()
        screenshot(page, "console-twingate-10-provisioning-synced")
        assert scim_downstream.token not in page.content()

        groups = [group for group in scim_downstream.groups() if group.get("displayName") == "Engineering"]
        assert len(groups) == 1
        assert len(groups[0].get("members") or []) == len(people)
