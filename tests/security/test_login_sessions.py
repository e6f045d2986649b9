"""Attacks on signing in and on sessions: lockout abuse, counter collisions, forged client
addresses, and a password-only staff session trying to use or arm itself.

Each test performs the attack the way an outsider would (real sign-in page, real TOTP, real
passkey registration) and asserts both the refusal and that nothing changed.
"""

import datetime
import re
import uuid
from urllib.parse import urlsplit

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from apps.directory import services as directory
from apps.directory.models import AdminRole, User
from apps.portal.models import PortalSession, WebAuthnCredential
from apps.portal.policy import sign_in_policy_update
from tests.factories import UserFactory
from tests.portal.conftest import PASSWORD, totp_code
from tests.portal.soft_authenticator import SoftAuthenticator
from tests.saml_sp import conftest as delegated_login
from tests.saml_sp.conftest import sign_in_upstream

pytestmark = pytest.mark.django_db

# The delegated-login fixtures (a pysaml2 upstream IdP on loopback and its UpstreamIdentityProvider).
upstream_idp = delegated_login.upstream_idp
make_upstream = delegated_login.make_upstream

OFFICE_NAT = "198.51.100.20"
ORIGIN = "https://portal.example.com"


@pytest.fixture(autouse=True)
def _portal_url(settings):
    settings.PORTAL_BASE_URL = ORIGIN


@pytest.fixture
def jane(db) -> User:
    return UserFactory(username="jane.doe", email="jane.doe@corp.example", password=PASSWORD)


def _sign_in(client: Client, username: str, password: str = PASSWORD, *, next: str = "", **extra):
    return client.post("/login/", {"username": username, "password": password, "next": next}, **extra)


def _signed_in_as(client: Client, user: User) -> bool:
    return client.session.get("_auth_user_id") == str(user.pk)


def _locked(response) -> bool:
    return response.status_code == 429 and "Too many" in response.content.decode()


def _age_attempts(**delta: float) -> None:
    """Move every recorded failure into the past, as if that much time had gone by."""
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= datetime.timedelta(**delta)
        attempt.save(update_fields=["attempt_time"])


# --- One address, many people (issue 12, item 4) ----------------------------------------------


def test_failures_for_made_up_names_from_an_office_nat_do_not_lock_out_a_colleague_behind_it(jane):
    prober = Client(REMOTE_ADDR=OFFICE_NAT)
    for n in range(5):
        assert not _locked(_sign_in(prober, f"nobody{n}", "guess"))

    colleague = Client(REMOTE_ADDR=OFFICE_NAT)
    response = _sign_in(colleague, "jane.doe")
    assert response.status_code == 302, response.status_code
    assert _signed_in_as(colleague, jane)
    assert not AuditEvent.objects.filter(action="portal.lockout").exists()


def test_spraying_many_accounts_from_one_address_locks_that_address_at_its_own_limit_for_its_own_cool_off(jane):
    sign_in_policy_update(actor=None, lockout_address_failure_limit=12, lockout_address_cooloff_seconds=10 * 60)
    sprayer = Client(REMOTE_ADDR=OFFICE_NAT)
    for n in range(11):
        assert not _locked(_sign_in(sprayer, f"user{n}", "Winter2025!"))
    assert _locked(_sign_in(sprayer, "user11", "Winter2025!"))  # the 12th failure locks the address
    # Meanwhile someone guesses jane's password from elsewhere: her account locks on its own limit.
    for n in range(5):
        _sign_in(Client(REMOTE_ADDR=f"203.0.113.{n + 1}"), "jane.doe", "guess")

    blocked = Client(REMOTE_ADDR=OFFICE_NAT)
    assert _locked(_sign_in(blocked, "someone.else", "whatever"))
    assert "_auth_user_id" not in blocked.session
    sessions = PortalSession.objects.count()
    lockout = AuditEvent.objects.filter(action="portal.lockout", after__scope="address").first()
    assert lockout is not None and lockout.after["limit"] == 12 and lockout.after["ip"] == OFFICE_NAT

    # Ten minutes and a second later the address may try again; jane's account (one hour) may not.
    _age_attempts(minutes=10, seconds=1)
    bob = UserFactory(username="bob", password=PASSWORD)
    behind_nat = Client(REMOTE_ADDR=OFFICE_NAT)
    assert _sign_in(behind_nat, "bob").status_code == 302
    assert _signed_in_as(behind_nat, bob)
    still = Client(REMOTE_ADDR="192.0.2.50")
    assert _locked(_sign_in(still, "jane.doe"))
    assert "_auth_user_id" not in still.session
    assert PortalSession.objects.count() == sessions + 1


def test_guessing_one_password_from_many_addresses_locks_the_account_at_five(jane):
    for n in range(5):
        _sign_in(Client(REMOTE_ADDR=f"203.0.113.{n + 1}"), "jane.doe", f"guess{n}")
    owner = Client(REMOTE_ADDR="192.0.2.99")
    assert _locked(_sign_in(owner, "jane.doe"))
    assert "_auth_user_id" not in owner.session
    assert not PortalSession.objects.filter(user=jane).exists()
    lockout = AuditEvent.objects.filter(action="portal.lockout", target_id=str(jane.pk)).first()
    assert lockout is not None and lockout.after["scope"] == "account" and lockout.after["limit"] == 5
    # Another account from the same addresses is not touched.
    UserFactory(username="bob", password=PASSWORD)
    assert _sign_in(Client(REMOTE_ADDR="203.0.113.1"), "bob").status_code == 302
    # The account's cool-off is an hour (from the last failure: the refused try above counts).
    _age_attempts(minutes=59)
    assert _locked(_sign_in(Client(REMOTE_ADDR="192.0.2.99"), "jane.doe"))
    _age_attempts(hours=1, seconds=1)
    assert _sign_in(Client(REMOTE_ADDR="192.0.2.99"), "jane.doe").status_code == 302


def test_refused_upstream_sign_ins_from_one_address_do_not_lock_delegated_sign_in_for_everyone(
    make_upstream, upstream_idp
):
    make_upstream()
    upstream_idp.add_user("mallory", "pw", email="mallory@elsewhere.example")  # no account here
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    alice = UserFactory(username="alice", email="alice@corp.example")
    attacker = Client(REMOTE_ADDR="192.0.2.66")
    for _ in range(5):
        sign_in_upstream(attacker, upstream_idp, "mallory")
    assert "_auth_user_id" not in attacker.session

    colleague = Client(REMOTE_ADDR="192.0.2.77")
    response, _ = sign_in_upstream(colleague, upstream_idp, "alice")
    assert response.status_code == 302
    assert _signed_in_as(colleague, alice)
    # Each refusal still counted, against the address that sent it (an assertion names no account).
    assert AccessAttempt.objects.get(ip_address="192.0.2.66").failures_since_start == 5


# --- Counter collisions (issue 12, item 5) ----------------------------------------------------


def test_failures_typed_as_an_address_that_is_one_users_name_and_anothers_email_lock_the_name_owner():
    named = UserFactory(username="x@corp.example", email="a.n.other@corp.example", password=PASSWORD)
    emailed = UserFactory(username="bee", email="x@corp.example", password=PASSWORD)
    for n in range(5):
        _sign_in(Client(REMOTE_ADDR=f"203.0.113.{n + 1}"), "x@corp.example", f"guess{n}")

    # The account that the sign-in page checks the password of is the one locked...
    victim = Client(REMOTE_ADDR="192.0.2.10")
    assert _locked(_sign_in(victim, "x@corp.example"))
    assert "_auth_user_id" not in victim.session
    lockouts = AuditEvent.objects.filter(action="portal.lockout")
    assert {event.target_id for event in lockouts} == {str(named.pk)}
    # ...not the account whose email was typed.
    bystander = Client(REMOTE_ADDR="192.0.2.11")
    assert _sign_in(bystander, "bee").status_code == 302
    assert _signed_in_as(bystander, emailed)
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"x@corp.example"}


# --- Forged client addresses ------------------------------------------------------------------

PROXY = "10.0.0.2"


@pytest.fixture
def behind_a_proxy(settings):
    """The production shape: one reverse proxy at 10.0.0.2 in front of the portal."""
    settings.TRUSTED_PROXIES = [PROXY]


def test_a_direct_client_forging_x_forwarded_for_is_judged_by_its_real_address(jane, behind_a_proxy):
    attacker = "192.0.2.66"
    for n in range(5):
        Client(REMOTE_ADDR=attacker).post(
            "/login/", {"username": "jane.doe", "password": "guess"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {attacker}
    failures = AuditEvent.objects.filter(action="portal.login.failure")
    assert failures.count() == 5 and set(failures.values_list("ip", flat=True)) == {attacker}
    # Blaming someone else's address does not work either: their counter never moved.
    assert not AccessAttempt.objects.filter(ip_address__startswith="203.0.113.").exists()


def test_a_direct_client_cannot_claim_https_with_x_forwarded_proto(behind_a_proxy, settings):
    settings.SECURE_SSL_REDIRECT = True
    direct = Client(REMOTE_ADDR="192.0.2.66").get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert direct.status_code == 301 and direct["Location"].startswith("https://")
    proxied = Client(REMOTE_ADDR=PROXY).get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200


def test_a_request_through_the_configured_proxies_is_judged_by_the_forwarded_address(jane, settings):
    settings.TRUSTED_PROXIES = [PROXY, "10.0.1.0/24"]
    client_address = "203.0.113.9"
    # The client's own X-Forwarded-For entries (left) are not believed; the last untrusted hop is.
    chain = f"198.51.100.1, {client_address}, 10.0.1.7"
    _sign_in(Client(REMOTE_ADDR=PROXY), "jane.doe", "guess", HTTP_X_FORWARDED_FOR=chain)
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [client_address]
    assert AuditEvent.objects.get(action="portal.login.failure").ip == client_address


# --- Staff with a password only (issue 12, from reading) ----------------------------------------


@pytest.fixture
def new_admin(db) -> User:
    """An admin promoted today who has not set up a second factor yet."""
    user = UserFactory(username="new.admin", email="new.admin@corp.example", password=PASSWORD)
    directory.user_set_admin_role(actor=None, user=user, role=AdminRole.SUPER_ADMIN)
    return user


def _console_urls() -> list[str]:
    def walk(patterns, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern)

    resolvers = [entry for entry in get_resolver().url_patterns if isinstance(entry, URLResolver)]
    console = next(entry for entry in resolvers if entry.namespace == "console")
    urls = []
    for route in walk(console.url_patterns, "/" + str(console.pattern)):
        path = re.sub(r"<uuid:\w+>", str(uuid.uuid4()), route)
        path = re.sub(r"<int:\w+>", "1", path)
        path = re.sub(r"<(?:\w+:)?\w+>", "x", path)
        urls.append(path)
    return urls


def _state() -> dict:
    return {
        "users": list(User.objects.order_by("pk").values()),
        "devices": TOTPDevice.objects.filter(confirmed=True).count()
        + WebAuthnCredential.objects.count()
        + StaticDevice.objects.count(),
        "audit": list(AuditEvent.objects.exclude(action__startswith="portal.").values_list("action", flat=True)),
    }


def test_a_staff_password_alone_opens_no_session_console_page_or_staff_action(new_admin):
    client = Client()
    response = _sign_in(client, "new.admin")
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/account/mfa/totp/"
    # Not signed in: the password only opened the enrolment step.
    assert "_auth_user_id" not in client.session
    assert not PortalSession.objects.filter(user=new_admin).exists()

    before = _state()
    urls = _console_urls()
    assert len(urls) > 40
    for url in urls:
        for method in (client.get, client.post):
            answer = method(url)
            assert answer.status_code in (302, 403, 404, 405), (url, answer.status_code)
            if answer.status_code == 302:
                assert urlsplit(answer["Location"]).path in ("/login/", "/account/mfa/totp/"), (url, answer)
    assert _state() == before
    # The SSO launchpad and the profile are closed too.
    assert client.get("/")["Location"].startswith("/login/")
    assert client.get("/account/")["Location"].startswith("/login/")


def _legacy_password_only_session(user: User) -> Client:
    """A session that holds a staff account signed in with only a password (signed in before the
    rule, or promoted to staff while signed in): whoever holds its cookie."""
    import time

    from apps.portal.services import LAST_SEEN_KEY, SIGNED_IN_AT_KEY

    client = Client()
    client.force_login(user, backend="apps.portal.backends.PortalBackend")
    session = client.session
    session[SIGNED_IN_AT_KEY] = session[LAST_SEEN_KEY] = int(time.time()) - 600
    session.save()
    return client


def test_a_password_only_staff_session_cannot_enrol_its_own_authenticator_without_the_password(new_admin):
    holder = _legacy_password_only_session(new_admin)
    # No staff power: the console sends it to enrolment, the admin API takes no session at all.
    assert holder.get("/api/v1/users").status_code == 401
    assert holder.post("/api/v1/idp-keys/rotate").status_code == 401
    to_enrol = holder.get("/console/")
    assert to_enrol.status_code == 302
    setup = holder.get(to_enrol["Location"])
    assert setup.status_code == 302
    assert urlsplit(setup["Location"]).path == "/account/confirm/"
    assert not TOTPDevice.objects.filter(user=new_admin).exists()  # no secret was handed out

    # Even knowing the secret of a half-made device, the code alone enrols nothing.
    planted = TOTPDevice.objects.create(user=new_admin, name="Authenticator app", confirmed=False)
    refused = holder.post("/account/mfa/totp/", {"code": totp_code(planted)})
    assert refused.status_code in (302, 400)
    planted.refresh_from_db()
    assert not planted.confirmed
    assert not StaticDevice.objects.filter(user=new_admin).exists()
    assert DEVICE_ID_SESSION_KEY not in holder.session
    assert holder.get("/console/").status_code == 302
    assert not AuditEvent.objects.filter(action="portal.mfa.enrol").exists()


def test_a_secret_seen_before_the_password_was_typed_again_never_becomes_the_factor(new_admin, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the wrong code below would otherwise delay the right one
    holder = _legacy_password_only_session(new_admin)
    # Say the secret of a half-made device leaked before the owner confirmed (an old page, a shoulder).
    leaked = TOTPDevice.objects.create(user=new_admin, name="Authenticator app", confirmed=False)
    assert holder.post("/account/confirm/", {"password": PASSWORD}).status_code == 302
    page = holder.get("/account/mfa/totp/")
    assert page.status_code == 200
    assert not TOTPDevice.objects.filter(pk=leaked.pk).exists()
    # The leaked secret's code enrols nothing; the secret shown now does.
    refused = holder.post("/account/mfa/totp/", {"code": totp_code(leaked)})
    assert refused.status_code == 400
    assert not TOTPDevice.objects.filter(user=new_admin, confirmed=True).exists()
    shown = TOTPDevice.objects.get(user=new_admin, confirmed=False)
    assert shown.key != leaked.key
    assert holder.post("/account/mfa/totp/", {"code": totp_code(shown)}).status_code == 200
    assert holder.get("/console/").status_code == 200


def test_a_password_only_staff_session_cannot_register_its_own_passkey_without_the_password(new_admin):
    holder = _legacy_password_only_session(new_admin)
    page = holder.get("/account/mfa/passkeys/add/")
    assert page.status_code == 302 and urlsplit(page["Location"]).path == "/account/confirm/"
    # A registration made up without the page's challenge is refused as well.
    forged = SoftAuthenticator(ORIGIN).register(
        {
            "challenge": "AAAAAAAAAAAAAAAAAAAAAA",
            "rp": {"id": "portal.example.com", "name": "idp-portal"},
            "user": {"id": "AAAA", "name": "new.admin", "displayName": "new.admin"},
        }
    )
    holder.post("/account/mfa/passkeys/add/", {"name": "Mine now", "credential": forged})
    assert not WebAuthnCredential.objects.filter(user=new_admin).exists()
    assert not AuditEvent.objects.filter(action="portal.mfa.enrol").exists()
    assert holder.get("/console/").status_code == 302


def test_replacing_the_authenticator_of_a_verified_staff_session_needs_the_password_again(db):
    from tests.console.conftest import console_client, make_staff

    admin = make_staff(AdminRole.ADMIN, username="ops.admin")
    old = TOTPDevice.objects.get(user=admin)
    holder = console_client(admin)  # password and TOTP passed: the console is open
    assert holder.get("/console/").status_code == 200

    page = holder.get("/account/mfa/totp/")
    assert page.status_code == 302 and urlsplit(page["Location"]).path == "/account/confirm/"
    assert list(TOTPDevice.objects.filter(user=admin)) == [old]

    # A wrong password at the prompt is a failure like any other: counted towards the lockout.
    wrong = holder.post("/account/confirm/", {"password": "not-it", "next": "/account/mfa/totp/"})
    assert wrong.status_code == 400
    assert AccessAttempt.objects.get(username="ops.admin").failures_since_start == 1
    assert AuditEvent.objects.filter(action="portal.reauth.failure", actor=admin).exists()

    # With the password typed again, the replacement goes through.
    confirmed = holder.post("/account/confirm/", {"password": PASSWORD, "next": "/account/mfa/totp/"})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/account/mfa/totp/"
    assert holder.get("/account/mfa/totp/").status_code == 200
    new = TOTPDevice.objects.filter(user=admin, confirmed=False).latest("id")
    done = holder.post("/account/mfa/totp/", {"code": totp_code(new)})
    assert done.status_code == 200 and len(done.context["codes"]) == 10
    assert list(TOTPDevice.objects.filter(user=admin, confirmed=True)) == [new]
    # The confirmation was used up: the next enrolment asks again.
    assert urlsplit(holder.get("/account/mfa/totp/")["Location"]).path == "/account/confirm/"


def test_guessing_the_password_at_the_enrolment_prompt_locks_the_account(new_admin):
    holder = _legacy_password_only_session(new_admin)
    for n in range(5):
        holder.post("/account/confirm/", {"password": f"guess{n}"})
    assert _locked(holder.post("/account/confirm/", {"password": PASSWORD}))
    assert not TOTPDevice.objects.filter(user=new_admin).exists()
    owner = Client(REMOTE_ADDR="192.0.2.44")
    assert _locked(_sign_in(owner, "new.admin"))
    assert "_auth_user_id" not in owner.session


def test_a_new_admin_enrols_right_after_the_password_and_then_reaches_the_console(new_admin):
    client = Client()
    response = _sign_in(client, "new.admin", next="/console/")
    setup = client.get(response["Location"])
    assert setup.status_code == 200 and "Administrators need a second factor" in setup.content.decode()
    device = TOTPDevice.objects.get(user=new_admin, confirmed=False)
    done = client.post(response["Location"], {"code": totp_code(device)})
    assert done.status_code == 200 and done.context["continue_url"] == "/console/"
    assert _signed_in_as(client, new_admin)
    assert client.get("/console/").status_code == 200
