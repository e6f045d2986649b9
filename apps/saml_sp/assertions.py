"""Checks on an upstream's Response after pysaml2 verified its signature (and decrypted it), before
anyone is signed in. pysaml2 leaves these to the caller: it accepts a Response issued up to a day
ago, checks Recipient only when told the conversation, and with unsolicited responses allowed it
takes any InResponseTo at all.

The same checks apply to every Response, solicited (an answer to our AuthnRequest) or not (a
sign-in started at the IdP, when the upstream accepts those): Destination and Recipient are our
ACS URL, the audience is our entity ID, it was issued within SAML_SP_RESPONSE_MAX_AGE_SECONDS, and
its assertion ID is accepted once across every worker (the replay cache of apps.saml_idp.replay).
"""

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone
from saml2.saml import SCM_BEARER

from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.saml_idp import bindings
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.replay import remember_once
from apps.saml_sp.conf import sp_urls
from apps.saml_sp.models import UpstreamIdentityProvider

_DS = "http://www.w3.org/2000/09/xmldsig#"
_XENC = "http://www.w3.org/2001/04/xmlenc#"
_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
_SHA1_ALGORITHMS = frozenset({"http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1"})
REPLAY_PURPOSE = "saml_sp.assertion"


class AssertionRefused(ValueError):
    """A verified Response that must not sign anyone in; `reason` goes to the audit trail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckedResponse:
    assertion_id: str
    solicited: bool


def _instant(value: str | None, what: str) -> datetime.datetime:
    try:
        parsed = datetime.datetime.fromisoformat((value or "").strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise AssertionRefused("bad_time", f"The {what} IssueInstant is not a time.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


def _check_sha1(response: Any) -> None:
    """SHA-1 signatures and digests are refused (pysaml2 accepts them; they can be forged)."""
    xml = response.xmlstr if isinstance(response.xmlstr, bytes) else str(response.xmlstr).encode()
    try:
        root = parse_untrusted_xml(xml)
    except UnsafeXMLError as exc:
        raise AssertionRefused("malformed", str(exc)) from exc
    algorithms = {
        element.get("Algorithm", "") for element in root.iter(f"{{{_DS}}}SignatureMethod", f"{{{_DS}}}DigestMethod")
    }
    weak = algorithms & _SHA1_ALGORITHMS
    if weak:
        raise AssertionRefused("sha1_signature", f"The upstream IdP signed with SHA-1 ({', '.join(sorted(weak))}).")


def _check_in_response_to(upstream: UpstreamIdentityProvider, response: Any) -> bool:
    """Whether the Response answers one of this browser's AuthnRequests; an InResponseTo that is not
    ours is refused even where unsolicited responses are accepted (it was meant for someone else)."""
    in_response_to = response.in_response_to
    if in_response_to and response.came_from is None:
        raise AssertionRefused("unknown_request", "The Response answers a request this browser did not make.")
    for confirmation in response.assertion.subject.subject_confirmation:
        data = confirmation.subject_confirmation_data
        if data is not None and data.in_response_to and data.in_response_to != in_response_to:
            raise AssertionRefused("unknown_request", "The assertion answers a request this browser did not make.")
    if not in_response_to and not upstream.accept_idp_initiated:
        raise AssertionRefused("idp_initiated_refused")
    return bool(in_response_to)


def _check_addressing(upstream: UpstreamIdentityProvider, response: Any) -> None:
    urls = sp_urls(upstream)
    destination = response.response.destination
    if destination and destination != urls["acs"]:
        raise AssertionRefused("wrong_destination", f"Destination {destination!r} is not this portal's ACS URL.")
    assertion = response.assertion
    bearer = [
        confirmation.subject_confirmation_data
        for confirmation in assertion.subject.subject_confirmation
        if confirmation.method == SCM_BEARER and confirmation.subject_confirmation_data is not None
    ]
    if not any(data.recipient == urls["acs"] for data in bearer):
        raise AssertionRefused("wrong_recipient", "No bearer confirmation names this portal's ACS URL as Recipient.")
    if not all(data.not_on_or_after for data in bearer):
        raise AssertionRefused("no_expiry", "A bearer confirmation has no NotOnOrAfter.")
    conditions = assertion.conditions
    audiences = {
        (audience.text or "").strip()
        for restriction in (conditions.audience_restriction if conditions is not None else [])
        for audience in restriction.audience
    }
    if urls["entity_id"] not in audiences:
        raise AssertionRefused("wrong_audience", "The assertion is not restricted to this portal's entity ID.")


def _check_age(response: Any, now: datetime.datetime) -> None:
    skew = datetime.timedelta(seconds=settings.SAML_IDP_CLOCK_SKEW_SECONDS)
    oldest = now - datetime.timedelta(seconds=settings.SAML_SP_RESPONSE_MAX_AGE_SECONDS) - skew
    for what, value in (("Response", response.response.issue_instant), ("assertion", response.assertion.issue_instant)):
        issued = _instant(value, what)
        if issued > now + skew:
            raise AssertionRefused("issued_in_future", f"The {what} was issued in the future ({value}).")
        if issued < oldest:
            raise AssertionRefused("too_old", f"The {what} was issued at {value}, too long ago.")


def replay_window_seconds() -> int:
    # An assertion older than the maximum age is refused anyway, so its ID need not be kept longer.
    return settings.SAML_SP_RESPONSE_MAX_AGE_SECONDS + 2 * settings.SAML_IDP_CLOCK_SKEW_SECONDS


def check_response(
    upstream: UpstreamIdentityProvider, response: Any, *, now: datetime.datetime | None = None
) -> CheckedResponse:
    """Raise AssertionRefused unless the verified `response` (pysaml2's AuthnResponse) may sign in."""
    if response.assertion is None or not response.assertion.id:
        raise AssertionRefused("no_assertion")
    _check_sha1(response)
    solicited = _check_in_response_to(upstream, response)
    _check_addressing(upstream, response)
    _check_age(response, now or timezone.now())
    # Last, so that a Response refused for another reason does not use up its assertion ID.
    if not remember_once(
        purpose=REPLAY_PURPOSE,
        scope=upstream.entity_id,
        message_id=response.assertion.id,
        ttl_seconds=replay_window_seconds(),
    ):
        raise AssertionRefused("replayed", f"Assertion {response.assertion.id} was already used.")
    return CheckedResponse(assertion_id=response.assertion.id, solicited=solicited)


def wire_facts(saml_response: str) -> dict[str, Any]:
    """How the Response arrived (for the audit trail and the admin): whether its assertion was
    encrypted, with which data and key transport algorithms, and the signature algorithm."""
    try:
        root = parse_untrusted_xml(bindings.decode_post_message(saml_response))
    except (SamlRequestError, UnsafeXMLError):
        return {}
    encrypted = root.find(f"{{{_SAML}}}EncryptedAssertion")
    data = key = ""
    if encrypted is not None:
        data_method = encrypted.find(f"{{{_XENC}}}EncryptedData/{{{_XENC}}}EncryptionMethod")
        key_method = next(iter(encrypted.iter(f"{{{_XENC}}}EncryptedKey")), None)
        key_method = key_method.find(f"{{{_XENC}}}EncryptionMethod") if key_method is not None else None
        data = data_method.get("Algorithm", "") if data_method is not None else ""
        key = key_method.get("Algorithm", "") if key_method is not None else ""
    signature = next(iter(root.iter(f"{{{_DS}}}SignatureMethod")), None)
    return {
        "encrypted": encrypted is not None,
        "data": data,
        "key": key,
        "signature": signature.get("Algorithm", "") if signature is not None else "",
    }
