"""End-to-end SSO against python3-saml (OneLogin) as the SP: it builds the requests and validates
our responses with its own strict checks (signature from our metadata, audience, destination,
InResponseTo, conditions)."""

import base64
import datetime
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from onelogin.saml2.constants import OneLogin_Saml2_Constants

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.connectors.models import Connector
from apps.directory import services as directory_services
from tests.factories import UserFactory
from tests.saml_idp.conftest import auto_post, make_connector
from tests.saml_idp.sp import SP_ACS_URL, deflate_and_encode, saml_instant, sp_keys

pytestmark = pytest.mark.django_db

LOGIN_PATH = reverse("portal:login")


def _login(client, next_url: str, password: str = "s3cret-Pass-99", username: str = "jane.doe"):  # noqa: S107
    response = client.post(LOGIN_PATH, {"username": username, "password": password, "next": next_url})
    assert response.status_code == 302, response.content[:300]
    return response


def _refusals(reason: str):
    return AuditEvent.objects.filter(action="saml.sso.refused", after__reason=reason)


def _require_signed(connector):
    return connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"require_signed_requests": True, "sp_signing_cert": sp_keys().signing_cert},
    )


# --- Success paths -------------------------------------------------------------------------------


def test_redirect_binding_signed_in_user_gets_a_valid_response(signed_in, connector, sp_factory, user):
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login(relay_state="/after/login?x=1&y=2")
    response = signed_in.get(url)
    action, fields = auto_post(response)
    assert action == SP_ACS_URL
    assert fields["RelayState"] == "/after/login?x=1&y=2"
    result = sp.acs(fields["SAMLResponse"], request_id=request_id, relay_state=fields["RelayState"])
    assert result.ok, (result.errors, result.reason)
    assert result.auth.get_nameid() == "jane.doe@example.com"
    assert result.auth.get_nameid_format() == OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS
    assert result.attributes == {
        "email": ["jane.doe@example.com"],
        "firstName": ["Jane"],
        "lastName": ["Doe"],
        "groups": ["Engineering"],
        "handle": ["Jane.Doe"],
    }
    assert result.auth.get_session_index()
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.filter(action="saml.sso.success").get()
    assert event.actor == user
    assert event.target_id == str(connector.pk)
    assert event.after["request_id"] == request_id
    assert event.after["flow"] == "sp"


def test_redirect_binding_not_signed_in_goes_through_the_login_page(client, connector, sp_factory):
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login()
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_PATH + "?next=")
    continue_url = client.get(response["Location"]).context["next"]
    assert continue_url.startswith(f"/saml/idp/{connector.slug}/sso/continue?t=")
    assert _login(client, continue_url)["Location"] == continue_url
    _, fields = auto_post(client.get(continue_url))
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)


def test_post_binding_signed_request_through_the_login_page(client, connector, sp_factory):
    _require_signed(connector)
    sp = sp_factory(connector, sign_requests=True)
    sso_url, form, request_id = sp.post_login(relay_state="state-123", sign=True)
    response = client.post(sso_url, form)
    # The cross-site POST carries no session cookie: continue on a same-site GET.
    assert response.status_code == 303
    continue_url = response["Location"]
    response = client.get(continue_url)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_PATH + "?next=")
    assert _login(client, continue_url)["Location"] == continue_url
    _, fields = auto_post(client.get(continue_url))
    result = sp.acs(fields["SAMLResponse"], request_id=request_id, relay_state=fields["RelayState"])
    assert result.ok, (result.errors, result.reason)
    assert fields["RelayState"] == "state-123"
    # The continue link is good for one response only.
    assert client.get(continue_url).status_code == 400
    assert _refusals("replay").exists()


def test_post_binding_signed_in_user(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    sso_url, form, request_id = sp.post_login()
    response = signed_in.post(sso_url, form)
    assert response.status_code == 303
    _, fields = auto_post(signed_in.get(response["Location"]))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok


def test_redirect_binding_signed_request(signed_in, connector, sp_factory):
    _require_signed(connector)
    sp = sp_factory(connector, sign_requests=True)
    url, request_id = sp.redirect_login(relay_state="https://sp.example.com/deep link?é")
    assert "Signature=" in url and "SigAlg=" in url
    _, fields = auto_post(signed_in.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok


@pytest.mark.parametrize(
    ("sign_response", "sign_assertion"),
    [(True, True), (True, False), (False, True)],
    ids=["both", "response", "assertion"],
)
def test_signing_options(signed_in, connector, sp_factory, sign_response, sign_assertion):
    connector_services.connector_update(
        actor=None, connector=connector, sso={"sign_response": sign_response, "sign_assertion": sign_assertion}
    )
    sp = sp_factory(connector, want_messages_signed=sign_response, want_assertions_signed=sign_assertion)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    assert xml.count("<ds:Signature xmlns") == sign_response + sign_assertion
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)


def test_encrypted_assertion(signed_in, connector, sp_factory):
    connector_services.connector_update(
        actor=None, connector=connector, sso={"sp_encryption_cert": sp_keys().encryption_cert}
    )
    sp = sp_factory(connector, want_assertions_encrypted=True)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    assert "EncryptedAssertion" in xml and "jane.doe@example.com" not in xml
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)
    assert result.attributes["email"] == ["jane.doe@example.com"]


def test_persistent_nameid_and_sha512(signed_in, connector, sp_factory, user):
    connector_services.connector_update(
        actor=None, connector=connector, sso={"nameid_format": "persistent", "signature_algorithm": "rsa-sha512"}
    )
    sp = sp_factory(connector, name_id_format=OneLogin_Saml2_Constants.NAMEID_PERSISTENT)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    assert "rsa-sha512" in base64.b64decode(fields["SAMLResponse"]).decode()
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)
    assert result.auth.get_nameid() == str(user.pk)


def test_idp_initiated_launch(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    response = signed_in.post(f"/saml/idp/{connector.slug}/launch", {"RelayState": "/dashboard"})
    action, fields = auto_post(response)
    assert action == SP_ACS_URL
    assert fields["RelayState"] == "/dashboard"
    result = sp.acs(fields["SAMLResponse"], request_id=None, relay_state=fields["RelayState"])
    assert result.ok, (result.errors, result.reason)
    assert "InResponseTo" not in base64.b64decode(fields["SAMLResponse"]).decode()
    assert AuditEvent.objects.filter(action="saml.sso.success", after__flow="idp").exists()


def test_idp_initiated_goes_only_to_the_default_acs(signed_in, connector, sp_factory):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"acs_urls": [{"url": SP_ACS_URL}, {"url": "https://sp.example.com/other-acs", "index": 5}]},
    )
    action, _ = auto_post(signed_in.post(f"/saml/idp/{connector.slug}/launch"))
    assert action == SP_ACS_URL


def test_idp_initiated_relay_state_rules(signed_in, connector):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"relay_state_urls": ["https://sp.example.com/app/"], "default_relay_state": "/home"},
    )
    launch = f"/saml/idp/{connector.slug}/launch"
    assert auto_post(signed_in.post(launch))[1]["RelayState"] == "/home"
    assert auto_post(signed_in.post(launch, {"RelayState": "https://sp.example.com/app/x"}))[1]["RelayState"]
    for offsite in (
        "https://evil.example/",
        "//evil.example/x",
        "javascript:alert(1)",
        "/\\evil.example",
        "https://sp.example.com/other",
    ):
        response = signed_in.post(launch, {"RelayState": offsite})
        assert response.status_code == 400, offsite
        assert b"SAMLResponse" not in response.content
    assert _refusals("relay_state_offsite").count() == 5


def test_idp_initiated_not_signed_in_goes_to_login(client, connector):
    response = client.get(f"/saml/idp/{connector.slug}/launch", {"RelayState": "/x"})
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_PATH)


def test_idp_initiated_post_not_signed_in_resumes_after_the_login_page(client, connector, sp_factory):
    launch = f"/saml/idp/{connector.slug}/launch"
    response = client.post(launch, {"RelayState": "/x"})
    assert response.status_code == 302
    next_url = client.get(response["Location"]).context["next"]
    assert next_url == f"{launch}?RelayState=%2Fx"
    assert _login(client, next_url)["Location"] == next_url
    # The sign-in page sends the browser back with a same-origin GET, which signs in.
    _, fields = auto_post(client.get(next_url, HTTP_SEC_FETCH_SITE="same-origin"))
    assert fields["RelayState"] == "/x"
    assert sp_factory(connector).acs(fields["SAMLResponse"], request_id=None, relay_state="/x").ok


def test_force_authn_makes_a_signed_in_user_sign_in_again(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login(force_authn=True)
    response = signed_in.get(url)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN_PATH)
    continue_url = signed_in.get(response["Location"]).context["next"]
    # Without signing in again, the continue link sends the user back to the login page.
    assert signed_in.get(continue_url)["Location"].startswith(LOGIN_PATH)
    _login(signed_in, continue_url)
    _, fields = auto_post(signed_in.get(continue_url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok


def test_is_passive_never_shows_a_page(client, connector, sp_factory):
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login(is_passive=True)
    response = client.get(url)
    _, fields = auto_post(response)
    assert b"Sign in" not in response.content
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert not result.ok
    assert "NoPassive" in base64.b64decode(fields["SAMLResponse"]).decode()
    assert _refusals("no_passive").exists()


def test_is_passive_signed_in(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login(is_passive=True)
    _, fields = auto_post(signed_in.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok


def test_special_characters_round_trip_exactly(signed_in, connector, sp_factory, user):
    """The comment-injection class of CVE-2017-11427: values must reach a strict SP unchanged."""
    connector_services.connector_update(actor=None, connector=connector, sso={"nameid_property": "username"})
    tricky_first = "Ja<!-- -->ne & \"Q\" 'x' <b>"
    directory_services.user_update(actor=None, user=user, first_name=tricky_first, last_name="O'Brien<!---->.evil")
    sp = sp_factory(connector, name_id_format=OneLogin_Saml2_Constants.NAMEID_UNSPECIFIED)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)
    assert result.attributes["firstName"] == [tricky_first]
    assert result.attributes["lastName"] == ["O'Brien<!---->.evil"]
    assert result.attributes["handle"] == [f"{tricky_first}.O'Brien<!---->.evil"]
    assert "<!--" not in base64.b64decode(fields["SAMLResponse"]).decode()


def test_nameid_with_comment_markers_round_trips(signed_in, connector, sp_factory, user):
    connector_services.connector_update(actor=None, connector=connector, sso={"nameid_property": "employee_id"})
    directory_services.user_update(actor=None, user=user, employee_id="E1<!---->@x&'\"")
    sp = sp_factory(connector, name_id_format=OneLogin_Saml2_Constants.NAMEID_UNSPECIFIED)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)
    assert result.auth.get_nameid() == "E1<!---->@x&'\""


def test_relay_state_of_1kb_is_echoed_escaped(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    relay_state = ('"><script>alert(1)</script>&' * 40)[:1024]
    url, _ = sp.redirect_login(relay_state=relay_state)
    response = signed_in.get(url)
    assert b"<script>alert(1)" not in response.content
    _, fields = auto_post(response)
    assert fields["RelayState"] == relay_state


# --- Refusals ------------------------------------------------------------------------------------


def _assert_refused(response, reason: str, status: int = 400):
    assert response.status_code == status, response.content[:300]
    assert b"SAMLResponse" not in response.content
    assert _refusals(reason).count() == 1, list(AuditEvent.objects.values_list("action", "after"))


def test_unknown_sp_entity_id(signed_in, connector, sp_factory):
    sp = sp_factory(connector, entity_id="https://intruder.example.com/metadata")
    url, _ = sp.redirect_login()
    _assert_refused(signed_in.get(url), "unknown_sp")


def test_unregistered_acs_url(signed_in, connector, sp_factory):
    sp = sp_factory(connector, acs_url="https://sp.example.com/stolen-acs")
    url, _ = sp.redirect_login()
    _assert_refused(signed_in.get(url), "acs_not_registered")


def test_unregistered_acs_index(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    xml, _ = sp.authn_request_xml()
    xml = xml.replace(f'AssertionConsumerServiceURL="{SP_ACS_URL}"', 'AssertionConsumerServiceIndex="7"')
    url = f"{connector.sso_url}?SAMLRequest={quote(deflate_and_encode(xml.encode()))}"
    _assert_refused(signed_in.get(url), "acs_not_registered")


def test_registered_acs_index_is_used(signed_in, connector, sp_factory):
    other = "https://sp.example.com/saml/acs2"
    connector_services.connector_update(
        actor=None, connector=connector, sso={"acs_urls": [{"url": SP_ACS_URL}, {"url": other, "index": 7}]}
    )
    sp = sp_factory(connector)
    xml, _ = sp.authn_request_xml()
    xml = xml.replace(f'AssertionConsumerServiceURL="{SP_ACS_URL}"', 'AssertionConsumerServiceIndex="7"')
    url = f"{connector.sso_url}?SAMLRequest={quote(deflate_and_encode(xml.encode()))}"
    assert auto_post(signed_in.get(url))[0] == other


def test_unsigned_request_when_signing_is_required(signed_in, connector, sp_factory):
    _require_signed(connector)
    url, _ = sp_factory(connector).redirect_login()
    _assert_refused(signed_in.get(url), "unsigned_request")
    sso_url, form, _ = sp_factory(connector).post_login()
    response = signed_in.post(sso_url, form)
    assert response.status_code == 400
    assert _refusals("unsigned_request").count() == 2


def test_badly_signed_requests(signed_in, connector, sp_factory):
    _require_signed(connector)
    sp = sp_factory(connector, sign_requests=True)
    url, _ = sp.redirect_login()
    tampered = url.replace("Signature=", "Signature=AAAA")
    _assert_refused(signed_in.get(tampered), "bad_signature")
    # Signed with a key the connector does not know.
    from apps.saml_idp.keys import generate_key_pair

    other = generate_key_pair(key_size=2048, validity_days=1, common_name="intruder")
    intruder = sp_factory(
        connector, sign_requests=True, private_key=other.private_key_pem, certificate=other.certificate_pem
    )
    url, _ = intruder.redirect_login()
    assert signed_in.get(url).status_code == 400
    # An embedded signature over a document that was changed afterwards.
    sso_url, form, _ = sp.post_login(sign=True)
    xml = (
        base64.b64decode(form["SAMLRequest"])
        .replace(b'ForceAuthn="false"', b'ForceAuthn="true"')
        .replace(b"ONELOGIN_", b"ONELOGIN_x")
    )
    form["SAMLRequest"] = base64.b64encode(xml).decode()
    assert signed_in.post(sso_url, form).status_code == 400
    assert _refusals("bad_signature").count() == 3


def test_sha1_signed_requests_are_refused(signed_in, connector, sp_factory):
    _require_signed(connector)
    sp = sp_factory(connector, sign_requests=True)
    sp.settings_dict["security"]["signatureAlgorithm"] = OneLogin_Saml2_Constants.RSA_SHA1
    sp.settings_dict["security"]["digestAlgorithm"] = OneLogin_Saml2_Constants.SHA1
    url, _ = sp.redirect_login()
    assert "rsa-sha1" in url
    _assert_refused(signed_in.get(url), "weak_signature")
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    xml, _ = sp.authn_request_xml()
    signed = OneLogin_Saml2_Utils.add_sign(
        xml,
        sp_keys().signing_key,
        sp_keys().signing_cert,
        sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA256,
        digest_algorithm=OneLogin_Saml2_Constants.SHA1,
    )
    sso_url, form, _ = sp.post_login(xml=signed)
    assert signed_in.post(sso_url, form).status_code == 400
    assert _refusals("weak_signature").count() == 2


def test_user_not_assigned(client, connector, sp_factory):
    client.force_login(UserFactory(username="outsider"))
    url, _ = sp_factory(connector).redirect_login()
    response = client.get(url)
    _assert_refused(response, "not_assigned", status=403)
    assert b"not assigned" in response.content


def test_user_not_assigned_passive_gets_a_saml_status(client, connector, sp_factory):
    client.force_login(UserFactory(username="outsider"))
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login(is_passive=True)
    _, fields = auto_post(client.get(url))
    assert "RequestDenied" in base64.b64decode(fields["SAMLResponse"]).decode()
    assert not sp.acs(fields["SAMLResponse"], request_id=request_id).ok
    assert _refusals("not_assigned").count() == 1


def test_suspended_user_gets_no_assertion(signed_in, connector, sp_factory, user):
    directory_services.user_set_status(actor=None, user=user, status="suspended")
    url, _ = sp_factory(connector).redirect_login()
    response = signed_in.get(url)
    # The session of a suspended user no longer authenticates: back to a sign-in they cannot pass.
    assert response.status_code == 302 and response["Location"].startswith(LOGIN_PATH)


def test_disabled_connector(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    # Switched off directly: the flag is what the IdP reads, whatever else turning it off triggers.
    Connector.objects.filter(pk=connector.pk).update(enabled=False)
    url, _ = sp.redirect_login()
    _assert_refused(signed_in.get(url), "connector_disabled", status=403)
    assert signed_in.get(f"/saml/idp/{connector.slug}/launch").status_code == 403
    assert _refusals("connector_disabled").count() == 2


def test_unknown_connector(signed_in):
    _assert_refused(signed_in.get("/saml/idp/no-such-app/sso?SAMLRequest=x"), "unknown_connector", status=404)


def test_replayed_request(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok
    _assert_refused(signed_in.get(url), "replay")


def _unsigned_redirect(connector, xml: str) -> str:
    return f"{connector.sso_url}?SAMLRequest={quote(deflate_and_encode(xml.encode()))}"


@pytest.mark.parametrize(
    ("shift", "reason"),
    [(datetime.timedelta(minutes=-6), "stale_request"), (datetime.timedelta(minutes=2), "future_request")],
)
def test_issue_instant_window(signed_in, connector, sp_factory, shift, reason):
    xml, _ = sp_factory(connector).authn_request_xml()
    import re

    xml = re.sub(r'IssueInstant="[^"]+"', f'IssueInstant="{saml_instant(timezone.now() + shift)}"', xml)
    _assert_refused(signed_in.get(_unsigned_redirect(connector, xml)), reason)


def test_impossible_issue_instant_is_refused_not_a_500(signed_in, connector, sp_factory):
    import re

    xml, _ = sp_factory(connector).authn_request_xml()
    xml = re.sub(r'IssueInstant="[^"]+"', 'IssueInstant="2026-13-45T00:00:00Z"', xml)
    _assert_refused(signed_in.get(_unsigned_redirect(connector, xml)), "malformed")


def test_wrong_destination(signed_in, connector, sp_factory):
    xml, _ = sp_factory(connector).authn_request_xml()
    xml = xml.replace(f'Destination="{connector.sso_url}"', 'Destination="https://elsewhere.example/sso"')
    _assert_refused(signed_in.get(_unsigned_redirect(connector, xml)), "wrong_destination")


def test_signed_post_without_destination(signed_in, connector, sp_factory):
    _require_signed(connector)
    sp = sp_factory(connector)
    xml, _ = sp.authn_request_xml()
    xml = xml.replace(f'Destination="{connector.sso_url}"', "")
    sso_url, form, _ = sp.post_login(xml=xml, sign=True)
    _assert_refused(signed_in.post(sso_url, form), "missing_destination")


def test_relay_state_over_1kb_is_refused(signed_in, connector, sp_factory):
    url, _ = sp_factory(connector).redirect_login(relay_state="r" * 1025)
    _assert_refused(signed_in.get(url), "relay_state_too_long")


def test_malformed_oversized_bombs_and_dtds(signed_in, connector, sp_factory):
    sso = connector.sso_url
    xml, _ = sp_factory(connector).authn_request_xml()
    # Not base64, base64 of not-XML, not deflated.
    assert signed_in.get(f"{sso}?SAMLRequest=%%%").status_code == 400
    assert signed_in.post(sso, {"SAMLRequest": base64.b64encode(b"<not xml").decode()}).status_code == 400
    assert signed_in.get(f"{sso}?SAMLRequest={quote(base64.b64encode(xml.encode()).decode())}").status_code == 400
    assert _refusals("malformed").count() == 3
    # Over 100 KB.
    big = xml.replace("</samlp:AuthnRequest>", "<!--" + "x" * 110_000 + "--></samlp:AuthnRequest>")
    assert signed_in.post(sso, {"SAMLRequest": base64.b64encode(big.encode()).decode()}).status_code == 400
    # A deflate bomb: 50 MB of zeros is 50 KB deflated; refused after inflating 100 KB.
    bomb = deflate_and_encode(b"<" + b"\0" * 50_000_000)
    assert signed_in.get(f"{sso}?SAMLRequest={quote(bomb)}").status_code == 400
    assert _refusals("too_large").count() == 2
    # DTDs, internal and external, and entities: refused before any signature check.
    body = xml.split("?>", 1)[-1]
    internal = '<!DOCTYPE r [<!ENTITY e "x">]>' + body.replace("<saml:Issuer>", "<saml:Issuer>&e;")
    external = '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">' + body
    billion = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' + body
    for document in (internal, external, billion):
        assert signed_in.post(sso, {"SAMLRequest": base64.b64encode(document.encode()).decode()}).status_code == 400
    assert _refusals("dtd").count() == 3


def test_missing_request(signed_in, connector):
    _assert_refused(signed_in.get(connector.sso_url), "missing_request")


def test_every_sso_is_audited(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    url, _ = sp.redirect_login()
    auto_post(signed_in.get(url))
    signed_in.get(url)  # replay
    actions = list(AuditEvent.objects.filter(action__startswith="saml.sso").values_list("action", flat=True))
    assert sorted(actions) == ["saml.sso.refused", "saml.sso.success"]


def _sso_statements(captured: CaptureQueriesContext) -> list[str]:
    # Loading the session and the user is Django's work, the same on every page, and so is reading
    # the cache generation tokens (with the session on PostgreSQL): not counted.
    statements = [query["sql"] or "" for query in captured.captured_queries]
    return [
        sql
        for sql in statements
        if not any(table in sql for table in ("django_session", '"directory_user"', "common_cachegeneration"))
    ]


def test_sso_path_statement_budget(signed_in, connector, sp_factory, settings):
    """The SSO path's own work on the database: the replay sighting (none with Redis), the
    assignment with mappings and groups, the audit row. The connector with its settings and key
    comes from the settings cache (apps.common.generations) once a request has read it."""
    sp = sp_factory(connector)
    auto_post(signed_in.get(sp.redirect_login()[0]))  # the portal key is generated on first use
    auto_post(signed_in.get(sp.redirect_login()[0]))  # which a second sign-in caches
    url, request_id = sp.redirect_login()
    with CaptureQueriesContext(connection) as captured:
        _, fields = auto_post(signed_in.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok
    assert len(_sso_statements(captured)) == (2 if settings.REDIS_URL else 3), _sso_statements(captured)
    with CaptureQueriesContext(connection) as captured:
        auto_post(signed_in.post(f"/saml/idp/{connector.slug}/launch"))
    assert len(_sso_statements(captured)) == 2, _sso_statements(captured)
    # Without the cache, one more: the connector, its SSO settings and the key that signs for it.
    settings.SETTINGS_CACHE = False
    with CaptureQueriesContext(connection) as captured:
        auto_post(signed_in.post(f"/saml/idp/{connector.slug}/launch"))
    assert len(_sso_statements(captured)) == 3, _sso_statements(captured)


def test_second_connector_cannot_use_the_first_ones_request(signed_in, connector, sp_factory):
    other = make_connector(name="Other App", sso={"sp_entity_id": "https://other.example.com/md"})
    url, _ = sp_factory(connector).redirect_login()
    _assert_refused(signed_in.get(url.replace(f"/{connector.slug}/", f"/{other.slug}/")), "unknown_sp")


def test_a_sign_in_older_than_the_connector_session_lifetime_must_be_renewed(signed_in, connector, sp_factory):
    connector_services.connector_update(actor=None, connector=connector, sso={"session_lifetime_seconds": 3600})
    session = signed_in.session
    session["saml_idp_auth_time"] = (timezone.now() - datetime.timedelta(hours=2)).timestamp()
    session.save()
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login()
    response = signed_in.get(url)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN_PATH)
    continue_url = signed_in.get(response["Location"]).context["next"]
    _login(signed_in, continue_url)
    _, fields = auto_post(signed_in.get(continue_url))
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)


def test_authn_statement_and_conditions(signed_in, connector, sp_factory):
    from lxml import etree

    sp = sp_factory(connector)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    ns = {"saml": "urn:oasis:names:tc:SAML:2.0:assertion", "samlp": "urn:oasis:names:tc:SAML:2.0:protocol"}
    assert root.get("Destination") == SP_ACS_URL and root.get("InResponseTo") == request_id
    assert root.findtext("saml:Issuer", namespaces=ns) == connector.idp_entity_id
    confirmation = root.find(".//saml:SubjectConfirmationData", ns)
    assert confirmation.get("Recipient") == SP_ACS_URL and confirmation.get("InResponseTo") == request_id
    conditions = root.find(".//saml:Conditions", ns)
    not_before = datetime.datetime.fromisoformat(conditions.get("NotBefore").replace("Z", "+00:00"))
    not_after = datetime.datetime.fromisoformat(conditions.get("NotOnOrAfter").replace("Z", "+00:00"))
    assert datetime.timedelta(seconds=320) <= not_after - not_before <= datetime.timedelta(seconds=340)
    assert root.findtext(".//saml:Audience", namespaces=ns) == connector.sso.sp_entity_id
    statement = root.find(".//saml:AuthnStatement", ns)
    assert statement.get("SessionIndex") and statement.get("AuthnInstant")
    assert root.findtext(".//saml:AuthnContextClassRef", namespaces=ns).endswith("PasswordProtectedTransport")
