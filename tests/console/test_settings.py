"""Settings: delegated login (upstream IdPs) and the password and session policy, editable at runtime
and read by the code that enforces it."""

import re
import time

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.directory import services as directory
from apps.directory.models import AdminRole
from apps.portal.models import SignInPolicy
from apps.portal.policy import sign_in_policy, sign_in_policy_update
from apps.portal.services import LAST_SEEN_KEY
from apps.saml_sp import services as upstream_services
from apps.saml_sp.models import UpstreamIdentityProvider
from tests.console.conftest import PASSWORD, console_client, make_staff
from tests.factories import UserFactory
from tests.saml_sp.upstream import UpstreamIdP

POLICY = {
    "password_min_length": "16",
    "mfa_required": "on",
    "session_idle_minutes": "30",
    "session_lifetime_minutes": "600",
    "lockout_failure_limit": "3",
    "lockout_cooloff_minutes": "45",
    "lockout_address_failure_limit": "40",
    "lockout_address_cooloff_minutes": "20",
}


@pytest.fixture
def upstream_idp():
    idp = UpstreamIdP()
    idp.start()
    yield idp
    idp.stop()


def _upstream_form(**overrides) -> dict:
    data = {
        "name": "Corp IdP",
        "slug": "corp",
        "metadata_url": "",
        "match_attribute": "email",
        "match_saml_attribute": "mail",
        "map_email": "mail",
        "map_first_name": "givenName",
        "enabled": "on",
        # Checked on the page by default, as a browser posts it.
        "single_logout": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _metadata_file(idp: UpstreamIdP) -> SimpleUploadedFile:
    return SimpleUploadedFile("idp-metadata.xml", idp.metadata().encode(), content_type="application/xml")


# --- Who may open Settings ------------------------------------------------------------------


@pytest.mark.parametrize("role", [AdminRole.ADMIN, AdminRole.HELPDESK, AdminRole.READONLY])
def test_only_super_admins_reach_settings(db, role):
    client = console_client(make_staff(role))
    upstream = UpstreamIdentityProvider.objects.create(name="x", slug="x", entity_id="e")
    pages = ("/console/settings/", "/console/settings/upstreams/new/", f"/console/settings/upstreams/{upstream.pk}/")
    for url in pages:
        assert client.get(url).status_code == 403, url
    assert client.post("/console/settings/", POLICY).status_code == 403
    assert client.post(f"/console/settings/upstreams/{upstream.pk}/delete/").status_code == 403
    assert not SignInPolicy.objects.exists()
    assert UpstreamIdentityProvider.objects.filter(pk=upstream.pk).exists()
    assert "/console/settings/" not in client.get("/console/tokens/scim/").content.decode()


def test_settings_need_a_recent_sign_in(db, super_admin):
    stale = console_client(super_admin, signed_in_seconds_ago=20 * 60)
    response = stale.get("/console/settings/")
    assert response.status_code == 302
    assert response["Location"] == "/console/confirm/?next=%2Fconsole%2Fsettings%2F"
    assert stale.post("/console/settings/", POLICY).status_code == 302
    assert not SignInPolicy.objects.exists()
    stale.post("/console/confirm/", {"secret": PASSWORD, "next": "/console/settings/"})
    assert stale.get("/console/settings/").status_code == 200


def test_csrf_is_required(db, super_admin):
    client = console_client(super_admin)
    client.handler.enforce_csrf_checks = True
    assert client.post("/console/settings/", POLICY).status_code == 403
    assert not SignInPolicy.objects.exists()


# --- Password and session policy ------------------------------------------------------------


def test_the_page_shows_the_settings_defaults_until_saved(db, super_client, settings):
    settings.PASSWORD_MIN_LENGTH = 13
    settings.PORTAL_SESSION_IDLE_SECONDS = 1800
    page = super_client.get("/console/settings/")
    assert page.status_code == 200
    form = page.context["policy_form"]
    assert form["password_min_length"].value() == 13
    assert form["session_idle_minutes"].value() == 30
    assert "deployment's defaults" in page.content.decode()


def test_saving_the_policy_is_audited_with_before_and_after(db, super_admin, super_client, settings):
    settings.PASSWORD_MIN_LENGTH = 12
    response = super_client.post("/console/settings/", POLICY)
    assert response.status_code == 302
    policy = sign_in_policy()
    assert policy.password_min_length == 16
    assert policy.mfa_required is True
    assert policy.session_idle_seconds == 1800
    assert policy.session_lifetime_seconds == 36000
    assert policy.lockout_failure_limit == 3
    assert policy.lockout_cooloff_seconds == 2700
    assert policy.lockout_address_failure_limit == 40
    assert policy.lockout_address_cooloff_seconds == 1200
    event = AuditEvent.objects.get(action="portal.policy.update")
    assert event.actor == super_admin
    assert event.before["password_min_length"] == 12
    assert event.after["password_min_length"] == 16
    assert event.before["lockout_address_failure_limit"] == 50
    assert event.after["lockout_address_failure_limit"] == 40
    assert event.after["lockout_address_cooloff_seconds"] == 1200
    assert "Password and session policy saved" in super_client.get("/console/settings/").content.decode()


def test_invalid_policy_gives_field_errors_and_changes_nothing(db, super_client):
    bad = {**POLICY, "password_min_length": "4", "session_idle_minutes": "700", "lockout_failure_limit": "x"}
    response = super_client.post("/console/settings/", bad)
    assert response.status_code == 400
    form = response.context["policy_form"]
    assert "password_min_length" in form.errors
    assert "lockout_failure_limit" in form.errors
    assert not SignInPolicy.objects.exists()
    idle = super_client.post("/console/settings/", {**POLICY, "session_idle_minutes": "700"})
    assert idle.status_code == 400
    assert "cannot be longer than the session lifetime" in idle.content.decode()
    assert not AuditEvent.objects.filter(action="portal.policy.update").exists()


def test_the_service_refuses_values_out_of_range(db, super_admin):
    with pytest.raises(ValidationError) as caught:
        sign_in_policy_update(actor=super_admin, lockout_failure_limit=1000, lockout_cooloff_seconds=5)
    assert set(caught.value.message_dict) == {"lockout_failure_limit", "lockout_cooloff_seconds"}
    # An address lock always lifts by itself, and never before one account would lock.
    with pytest.raises(ValidationError) as caught:
        sign_in_policy_update(actor=super_admin, lockout_address_cooloff_seconds=0)
    assert set(caught.value.message_dict) == {"lockout_address_cooloff_seconds"}
    with pytest.raises(ValidationError) as caught:
        sign_in_policy_update(actor=super_admin, lockout_failure_limit=20, lockout_address_failure_limit=15)
    assert "choose 20 or more" in caught.value.message_dict["lockout_address_failure_limit"][0]
    assert not SignInPolicy.objects.exists()


def test_the_address_lockout_fields_are_validated_in_the_form(db, super_client):
    response = super_client.post(
        "/console/settings/", {**POLICY, "lockout_address_failure_limit": "2", "lockout_address_cooloff_minutes": "0"}
    )
    assert response.status_code == 400
    form = response.context["policy_form"]
    assert {"lockout_address_failure_limit", "lockout_address_cooloff_minutes"} <= set(form.errors)
    below = super_client.post("/console/settings/", {**POLICY, "lockout_failure_limit": "60"})
    assert below.status_code == 400
    assert "An address locks no sooner than one account" in below.content.decode()
    assert not SignInPolicy.objects.exists()


def test_a_new_minimum_length_applies_to_the_next_password_set(db, super_admin, super_client):
    jane = UserFactory(username="jane.doe")
    directory.user_set_password(actor=super_admin, user=jane, password="Fjord-Lamp-7x2q")  # 15 characters
    super_client.post("/console/settings/", POLICY)
    with pytest.raises(ValidationError) as caught:
        directory.user_set_password(actor=super_admin, user=jane, password="Fjord-Lamp-7x2q")
    assert "at least 16 characters" in str(caught.value)
    directory.user_set_password(actor=super_admin, user=jane, password="Fjord-Lamp-7x2q-ok")


def test_a_shorter_idle_timeout_signs_out_an_idle_session(db, super_client, readonly):
    client = console_client(readonly)
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - 20 * 60
    session.save()
    assert client.get("/console/tokens/scim/").status_code == 200  # 20 minutes idle is fine under 2 hours
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - 20 * 60
    session.save()

    super_client.post("/console/settings/", {**POLICY, "session_idle_minutes": "15"})
    response = client.get("/console/tokens/scim/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session


def test_a_shorter_lifetime_ends_sessions_signed_in_before_it(db, super_client, readonly):
    client = console_client(readonly, signed_in_seconds_ago=50 * 60)
    assert client.get("/console/tokens/scim/").status_code == 200
    super_client.post("/console/settings/", {**POLICY, "session_idle_minutes": "15", "session_lifetime_minutes": "30"})
    assert client.get("/console/tokens/scim/").status_code == 302


def test_the_lockout_limit_and_cool_off_come_from_the_policy(db, super_client):
    UserFactory(username="jane.doe", password=PASSWORD)
    super_client.post("/console/settings/", POLICY)  # lockout after 3, for 45 minutes
    browser = Client(REMOTE_ADDR="192.0.2.10")
    for _ in range(3):
        browser.post("/login/", {"username": "jane.doe", "password": "wrong"})
    locked = browser.post("/login/", {"username": "jane.doe", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Try again in 45 minutes" in locked.content.decode()
    assert {event.after["limit"] for event in AuditEvent.objects.filter(action="portal.lockout")} == {3}
    # The address lock: 40 failures from one address whatever the names, for 20 minutes.
    sprayer = Client(REMOTE_ADDR="192.0.2.20")
    for n in range(39):
        assert sprayer.post("/login/", {"username": f"name{n}", "password": "x"}).status_code == 200
    address_locked = sprayer.post("/login/", {"username": "name39", "password": "x"})
    assert address_locked.status_code == 429
    assert "Try again in 20 minutes" in address_locked.content.decode()
    lockout = AuditEvent.objects.filter(action="portal.lockout", after__scope="address").get()
    assert lockout.after["limit"] == 40 and lockout.target_label == "192.0.2.20"


def test_mfa_for_everyone_sends_people_without_a_factor_to_enrol(db, super_client):
    UserFactory(username="jane.doe", password=PASSWORD)
    assert Client().post("/login/", {"username": "jane.doe", "password": PASSWORD})["Location"] == "/"
    super_client.post("/console/settings/", POLICY)
    response = Client().post("/login/", {"username": "jane.doe", "password": PASSWORD, "next": "/"})
    assert response.status_code == 302
    assert response["Location"].startswith("/account/mfa/totp/")


def test_a_request_reads_the_policy_once_at_most(db, readonly):
    sign_in_policy_update(actor=None, password_min_length=14)
    client = console_client(readonly)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/console/tokens/scim/").status_code == 200
    reads = [query["sql"] for query in queries.captured_queries if "portal_signinpolicy" in query["sql"]]
    assert len(reads) <= 1  # none once the settings cache holds it
    # A sign-in asks the policy several things (lockout limit, MFA, lifetime): still one read.
    UserFactory(username="jane.doe", password=PASSWORD)
    with CaptureQueriesContext(connection) as queries:
        assert Client().post("/login/", {"username": "jane.doe", "password": PASSWORD}).status_code == 302
    reads = [query["sql"] for query in queries.captured_queries if "portal_signinpolicy" in query["sql"]]
    assert len(reads) <= 1


def test_sign_in_sets_the_cookie_lifetime_from_the_policy(db):
    sign_in_policy_update(actor=None, session_lifetime_seconds=3 * 3600, session_idle_seconds=600)
    UserFactory(username="jane.doe", password=PASSWORD)
    client = Client()
    client.post("/login/", {"username": "jane.doe", "password": PASSWORD})
    assert client.session.get_expiry_age() == 3 * 3600


# --- Delegated login ------------------------------------------------------------------------


def test_add_an_upstream_from_uploaded_metadata(db, super_admin, super_client, upstream_idp, settings):
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    form = super_client.get("/console/settings/upstreams/new/")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.content.decode()
    response = super_client.post(
        "/console/settings/upstreams/new/",
        _upstream_form(metadata_file=_metadata_file(upstream_idp), jit_create="on"),
    )
    assert response.status_code == 302, response.context["form"].errors
    upstream = UpstreamIdentityProvider.objects.get()
    assert upstream.entity_id == upstream_idp.entity_id
    assert upstream.slug == "corp" and upstream.metadata_url == ""
    assert upstream.jit_create and upstream.enabled and not upstream.enforced
    assert upstream.attribute_mapping == {"email": "mail", "first_name": "givenName"}
    assert AuditEvent.objects.get(action="saml_sp.upstream.create").actor == super_admin

    page = super_client.get(response["Location"]).content.decode()
    text = re.sub(r"<[^>]+>", "", page)  # a URL is shown in pieces that wrap after a slash
    assert "https://portal.example.com/saml/sp/corp/metadata/" in text
    assert "https://portal.example.com/saml/sp/corp/acs/" in text
    assert 'data-copy-target="sp-metadata-url"' in page
    overview = super_client.get("/console/settings/").content.decode()
    assert "Corp IdP" in overview and upstream_idp.entity_id in re.sub(r"<[^>]+>", "", overview)


def test_add_an_upstream_from_a_metadata_url(db, super_client, upstream_idp):
    response = super_client.post(
        "/console/settings/upstreams/new/", _upstream_form(metadata_url=f"{upstream_idp.base}/metadata")
    )
    assert response.status_code == 302, response.context["form"].errors
    upstream = UpstreamIdentityProvider.objects.get()
    assert upstream.metadata_url == f"{upstream_idp.base}/metadata"
    assert upstream.entity_id == upstream_idp.entity_id
    assert upstream.metadata_fetched_at is not None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/metadata",
        "http://127.0.0.1:6379/",
        "http://user:pw@idp.example.com/metadata",
        "gopher://idp.example.com/",
    ],
)
def test_metadata_urls_on_internal_addresses_are_refused(db, super_client, settings, url):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    response = super_client.post("/console/settings/upstreams/new/", _upstream_form(metadata_url=url))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "metadata_url" in errors, errors
    assert not UpstreamIdentityProvider.objects.exists()
    assert not AuditEvent.objects.filter(action="saml_sp.upstream.create").exists()


def test_bad_metadata_and_missing_fields_are_field_errors(db, super_client):
    junk = SimpleUploadedFile("idp.xml", b"<not-metadata/>", content_type="application/xml")
    response = super_client.post("/console/settings/upstreams/new/", _upstream_form(metadata_file=junk))
    assert response.status_code == 400
    assert "metadata_file" in response.context["form"].errors
    nothing = super_client.post("/console/settings/upstreams/new/", _upstream_form(name=""))
    assert nothing.status_code == 400
    assert {"name", "metadata_url"} <= set(nothing.context["form"].errors)
    assert not UpstreamIdentityProvider.objects.exists()


def test_edit_enforce_and_remove_an_upstream(db, super_admin, super_client, upstream_idp):
    upstream = upstream_services.upstream_create(
        actor=None, name="Corp IdP", slug="corp", metadata_xml=upstream_idp.metadata()
    )
    url = f"/console/settings/upstreams/{upstream.pk}/"
    form = super_client.get(url).context["form"]
    assert form["name"].value() == "Corp IdP"

    response = super_client.post(
        url, _upstream_form(slug=None, enforced="on", match_attribute="username", match_saml_attribute="uid")
    )
    assert response.status_code == 302, response.context["form"].errors
    upstream.refresh_from_db()
    assert upstream.enforced and upstream.match_attribute == "username"
    event = AuditEvent.objects.get(action="saml_sp.upstream.update")
    assert event.actor == super_admin
    assert event.before["enforced"] is False and event.after["enforced"] is True
    # Password sign-in is off: the sign-in page goes to the upstream IdP.
    assert Client().get("/login/")["Location"].startswith("/saml/sp/corp/login/")

    confirm = super_client.get(f"{url}delete/")
    assert confirm.status_code == 200
    assert "the password sign-in form comes back" in confirm.content.decode()
    assert UpstreamIdentityProvider.objects.exists()
    assert super_client.post(f"{url}delete/").status_code == 302
    assert not UpstreamIdentityProvider.objects.exists()
    assert AuditEvent.objects.get(action="saml_sp.upstream.delete").actor == super_admin
    assert Client().get("/login/").status_code == 200


def test_editing_a_metadata_url_to_an_internal_address_is_refused(db, super_client, upstream_idp, settings):
    upstream = upstream_services.upstream_create(
        actor=None, name="Corp IdP", slug="corp", metadata_url=f"{upstream_idp.base}/metadata"
    )
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    response = super_client.post(
        f"/console/settings/upstreams/{upstream.pk}/",
        _upstream_form(slug=None, metadata_url="http://169.254.169.254/metadata"),
    )
    assert response.status_code == 400
    assert "metadata_url" in response.context["form"].errors
    upstream.refresh_from_db()
    assert upstream.metadata_url == f"{upstream_idp.base}/metadata"


def test_saving_without_changes_does_not_fetch_again(db, super_client, upstream_idp):
    upstream = upstream_services.upstream_create(
        actor=None, name="Corp IdP", slug="corp", metadata_url=f"{upstream_idp.base}/metadata"
    )
    fetched = upstream.metadata_fetched_at
    form = _upstream_form(
        slug=None, metadata_url=upstream.metadata_url, match_saml_attribute="", map_email="", map_first_name=""
    )
    response = super_client.post(f"/console/settings/upstreams/{upstream.pk}/", form)
    assert response.status_code == 302
    upstream.refresh_from_db()
    assert upstream.metadata_fetched_at == fetched
    assert not AuditEvent.objects.filter(action="saml_sp.upstream.update").exists()
    refreshed = super_client.post(f"/console/settings/upstreams/{upstream.pk}/", {**form, "refresh_metadata": "on"})
    assert refreshed.status_code == 302
    upstream.refresh_from_db()
    assert upstream.metadata_fetched_at > fetched


def test_upstream_switches_for_idp_initiated_sign_in_logout_and_groups(db, super_admin, super_client, upstream_idp):
    response = super_client.post(
        "/console/settings/upstreams/new/", _upstream_form(metadata_file=_metadata_file(upstream_idp))
    )
    upstream = UpstreamIdentityProvider.objects.get()
    page = super_client.get(response["Location"]).content.decode()
    assert "Accept sign-ins started at the IdP" in page and "Groups from attribute" in page
    assert "/saml/sp/corp/slo/" in re.sub(r"<[^>]+>", "", page)  # shown in pieces that wrap
    assert not upstream.accept_idp_initiated and upstream.single_logout and upstream.groups_attribute == ""
    response = super_client.post(
        f"/console/settings/upstreams/{upstream.pk}/",
        _upstream_form(
            slug=None,
            accept_idp_initiated="on",
            single_logout=None,
            groups_attribute="memberOf",
            groups_sync="create_missing",
        ),
    )
    assert response.status_code == 302, response.context["form"].errors
    upstream.refresh_from_db()
    assert upstream.accept_idp_initiated and not upstream.single_logout
    assert (upstream.groups_attribute, upstream.groups_sync) == ("memberOf", "create_missing")
    event = AuditEvent.objects.filter(action="saml_sp.upstream.update").latest("created")
    assert event.actor == super_admin
    assert event.after == {
        "accept_idp_initiated": True,
        "single_logout": False,
        "groups_attribute": "memberOf",
        "groups_sync": "create_missing",
    }
    refused = super_client.post(
        f"/console/settings/upstreams/{upstream.pk}/", _upstream_form(slug=None, groups_sync="all-of-them")
    )
    assert refused.status_code == 400 and "groups_sync" in refused.context["form"].errors


def test_delegated_login_key_is_shown_and_rotated_in_two_steps(db, super_admin, super_client, upstream_idp):
    from apps.saml_sp.models import SpKey, SpKeyStatus

    overview = super_client.get("/console/settings/").content.decode()
    assert "Delegated login key" not in overview  # no upstream, no key yet
    upstream_services.upstream_create(actor=None, name="Corp IdP", slug="corp", metadata_xml=upstream_idp.metadata())
    overview = super_client.get("/console/settings/").content.decode()
    active = SpKey.objects.get(status=SpKeyStatus.ACTIVE)
    assert "Delegated login key" in overview and active.fingerprint_sha256 in overview
    assert "PRIVATE" not in overview

    assert super_client.get("/console/settings/delegated-login-key/next/").status_code == 405
    assert super_client.post("/console/settings/delegated-login-key/next/").status_code == 302
    upcoming = SpKey.objects.get(status=SpKeyStatus.NEXT)
    assert upcoming.fingerprint_sha256 in super_client.get("/console/settings/").content.decode()
    certificate = super_client.get(f"/console/settings/delegated-login-key/{upcoming.pk}/certificate.pem")
    assert certificate.content.decode() == upcoming.certificate_pem

    assert super_client.post("/console/settings/delegated-login-key/rotate/").status_code == 302
    upcoming.refresh_from_db()
    assert upcoming.status == SpKeyStatus.ACTIVE
    assert AuditEvent.objects.get(action="saml_sp.key.rotate").actor == super_admin


@pytest.mark.parametrize("role", ["admin", "readonly"])
def test_only_super_admins_rotate_the_delegated_login_key(db, role, request):
    from apps.saml_sp.models import SpKey

    client = request.getfixturevalue(f"{role}_client")
    response = client.post("/console/settings/delegated-login-key/rotate/")
    assert response.status_code in (302, 403)
    assert not SpKey.objects.exists()
