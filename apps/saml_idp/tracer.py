"""The SAML tracer: what a connector's SP sent and what the portal answered, checked in plain words.

While an admin has capture on for a connector (`SsoSettings.trace_until` in the future), the SSO and
SLO views hand every AuthnRequest, LogoutRequest and LogoutResponse they receive, every Response
and LogoutResponse they send, and every sign-in they refuse (user not assigned, app switched off)
to the `record_*` functions here. With capture off the views only compare that timestamp, read with
the row the SSO path loads anyway: no query, no parsing.

Each request is checked against the connector's settings independently of the parser in
`requests.py`, which stops at the first refusal: the tracer names every problem it finds ("ACS URL
not registered", "Request signed with SHA-1", ...), reusing the parser's decoding and signature
verification. The replay cache is never touched here, so tracing cannot burn a request's ID.

Credentials: a signed Response works as one, so `_store` keeps every message without its signature
values, digests and ciphertext (apps/saml_idp/trace_xml.py), after the checks have read them.

Personal data: Responses carry names, emails and groups. A capture lasts at most
SAML_IDP_TRACE_MAX_MINUTES, at most SAML_IDP_TRACE_KEEP messages are kept per connector, and they
are deleted SAML_IDP_TRACE_RETENTION_SECONDS after they were recorded. When the connector encrypts
its assertions, the Response is stored without its ciphertext and never decrypted: the portal never
keeps a plaintext copy of what the admin chose to hide from everyone but the SP; the assertion
preview shows what such an assertion contains.
"""

import base64
import binascii
import datetime
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from lxml import etree

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.connectors.models import Connector, SsoSettings
from apps.directory.models import User
from apps.saml_idp import endpoints
from apps.saml_idp.attributes import subject_for
from apps.saml_idp.constants import (
    ASSERTION_NS,
    BINDING_POST,
    BINDING_REDIRECT,
    DIGEST_ALGORITHMS,
    DS_NS,
    NAMEID_FORMATS,
    PROTOCOL_NS,
    SIGNATURE_ALGORITHMS,
    STATUS_SUCCESS,
)
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.models import SamlTraceRecord, TraceKind, TraceOutcome
from apps.saml_idp.requests import (
    IncomingMessage,
    SignatureFacts,
    check_signature,
    message_bytes,
    parse_message_xml,
    signature_facts,
)
from apps.saml_idp.responses import Session, _assertion
from apps.saml_idp.selectors import sign_in_facts
from apps.saml_idp.services import check_sign_in_allowed, default_acs_url
from apps.saml_idp.trace_xml import pretty_xml, stored_xml

_P = f"{{{PROTOCOL_NS}}}"
_A = f"{{{ASSERTION_NS}}}"
_DS = f"{{{DS_NS}}}"
_ALGORITHM_NAMES = {uri: name.upper() for name, uri in SIGNATURE_ALGORITHMS.items()}
_DIGEST_NAMES = {uri: name.removeprefix("rsa-").upper() for name, uri in DIGEST_ALGORITHMS.items()}
_SHA1_URIS = {SIGNATURE_ALGORITHMS["rsa-sha1"], DIGEST_ALGORITHMS["rsa-sha1"]}
_UNSPECIFIED_FORMATS = {NAMEID_FORMATS["unspecified"], ""}
_MAX_RELAY_STATE_STORED = 2048

BAD, WARN, INFO = "bad", "warn", "info"
_LEVEL_ORDER = {BAD: 0, WARN: 1, INFO: 2}


# --- Capture on and off -------------------------------------------------------------------------


def capturing(connector: Connector, *, now: datetime.datetime | None = None) -> bool:
    """Whether the connector's messages are being recorded. No query when `connector.sso` is loaded."""
    until = connector.sso.trace_until
    return until is not None and until > (now or timezone.now())


def trace_start(*, actor: Actor, connector: Connector, minutes: int) -> datetime.datetime:
    """Record the connector's SAML traffic for `minutes` (at most SAML_IDP_TRACE_MAX_MINUTES)."""
    limit = settings.SAML_IDP_TRACE_MAX_MINUTES
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= limit:
        raise ApplicationError(f"Capture for 1 to {limit} minutes.", code="trace_minutes")
    if not connector.has_sso:
        raise ApplicationError(f"{connector.name} has no SAML sign-in to trace.", code="no_sso")
    until = timezone.now() + datetime.timedelta(minutes=minutes)
    with transaction.atomic():
        SsoSettings.objects.filter(connector=connector).update(trace_until=until)
        audit_record(
            actor=actor,
            action="saml.trace.start",
            target=connector,
            after={"until": until.isoformat(), "minutes": minutes},
        )
    connector.sso.trace_until = until
    return until


def trace_stop(*, actor: Actor, connector: Connector) -> None:
    """Stop recording now (the messages already recorded stay until they expire or are cleared)."""
    with transaction.atomic():
        SsoSettings.objects.filter(connector=connector).update(trace_until=None)
        audit_record(actor=actor, action="saml.trace.stop", target=connector)
    connector.sso.trace_until = None


def trace_clear(*, actor: Actor, connector: Connector) -> int:
    """Delete every message recorded for the connector; returns how many there were."""
    with transaction.atomic():
        deleted, _ = SamlTraceRecord.objects.filter(connector=connector).delete()
        audit_record(actor=actor, action="saml.trace.clear", target=connector, after={"deleted": deleted})
    return deleted


def trace_expire(*, now: datetime.datetime | None = None) -> int:
    """Delete the messages older than the retention period, and end captures past their time."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.SAML_IDP_TRACE_RETENTION_SECONDS)
    deleted, _ = SamlTraceRecord.objects.filter(created__lt=cutoff).delete()
    SsoSettings.objects.filter(trace_until__lte=now).update(trace_until=None)
    return deleted


def trace_records(connector: Connector) -> list[SamlTraceRecord]:
    """The connector's recorded messages within the retention period, newest first."""
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.SAML_IDP_TRACE_RETENTION_SECONDS)
    records = SamlTraceRecord.objects.filter(connector=connector, created__gte=cutoff).order_by("-created", "-id")
    return list(records[: settings.SAML_IDP_TRACE_KEEP])


def _store(connector: Connector, *, message: etree._Element | None = None, **fields: Any) -> SamlTraceRecord:
    # The one way into the table: what is stored can never be replayed as a credential.
    fields["xml"] = stored_xml(message) if message is not None else ""
    # Problems first, then warnings, then notes (a stable sort keeps the order of the checks).
    fields["problems"] = sorted(fields.get("problems", []), key=lambda problem: _LEVEL_ORDER[problem["level"]])
    record = SamlTraceRecord.objects.create(connector=connector, **fields)
    keep = list(
        SamlTraceRecord.objects.filter(connector=connector)
        .order_by("-created", "-id")
        .values_list("id", flat=True)[: settings.SAML_IDP_TRACE_KEEP]
    )
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.SAML_IDP_TRACE_RETENTION_SECONDS)
    SamlTraceRecord.objects.filter(connector=connector).filter(Q(created__lt=cutoff) | ~Q(id__in=keep)).delete()
    return record


def _who(user: Any) -> dict:
    if getattr(user, "is_authenticated", False):
        return {"user": user, "user_label": user.username[:255]}
    return {"user": None, "user_label": ""}


# --- Reading XML --------------------------------------------------------------------------------


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _problem(level: str, title: str, detail: str = "") -> dict:
    return {"level": level, "title": title, "detail": detail}


def _instant(value: str | None) -> datetime.datetime | None:
    try:
        parsed = parse_datetime(value or "")
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _signature_algorithms(signature: etree._Element | None) -> tuple[str, list[str]]:
    """(signature method URI, digest method URIs) of an enveloped ds:Signature."""
    if signature is None:
        return "", []
    method = signature.find(f"{_DS}SignedInfo/{_DS}SignatureMethod")
    digests = signature.findall(f"{_DS}SignedInfo/{_DS}Reference/{_DS}DigestMethod")
    return (method.get("Algorithm") or "") if method is not None else "", [d.get("Algorithm") or "" for d in digests]


def algorithm_label(uri: str) -> str:
    return _ALGORITHM_NAMES.get(uri, uri or "none")


# --- Checks of what SPs send --------------------------------------------------------------------


@dataclass
class _Checked:
    problems: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    message_id: str = ""
    root: etree._Element | None = None


def _decode(incoming: IncomingMessage, checked: _Checked) -> tuple[bytes, etree._Element] | None:
    """The parser's own two steps (requests.py); a refusal becomes a problem named after its step."""
    try:
        xml = message_bytes(incoming)
    except SamlRequestError as error:
        checked.problems.append(_problem(BAD, "The message could not be decoded", error.message))
        return None
    try:
        return xml, parse_message_xml(xml)
    except SamlRequestError as error:
        checked.problems.append(_problem(BAD, "The message is not acceptable XML", error.message))
        return None


def _check_envelope(root: etree._Element, connector: Connector, expected_tag: str, checked: _Checked) -> bool:
    """Element, version, ID and issuer; False when the message is not the expected element at all."""
    if root.tag != f"{_P}{expected_tag}":
        checked.problems.append(
            _problem(BAD, f"Not a samlp:{expected_tag}", f"The message is a {etree.QName(root).localname}.")
        )
        return False
    if root.get("Version") != "2.0":
        checked.problems.append(_problem(BAD, "Not SAML 2.0", f"Version is {root.get('Version') or 'missing'}."))
    checked.message_id = (root.get("ID") or "")[:256]
    if not checked.message_id:
        checked.problems.append(_problem(BAD, "The message has no ID"))
    issuer = _text(root.find(f"{_A}Issuer"))
    expected = connector.sso.sp_entity_id
    checked.summary["issuer"] = issuer
    if not issuer:
        checked.problems.append(_problem(BAD, "The message has no Issuer", f"Expected {expected or '(not set)'}."))
    elif issuer != expected:
        checked.problems.append(
            _problem(
                BAD,
                "Issuer is not the SP entity ID",
                f"The message says it comes from {issuer}; {connector.name} is set up for "
                f"{expected or '(no SP entity ID configured)'}.",
            )
        )
    return True


def _check_signature_of(
    root: etree._Element,
    xml: bytes,
    incoming: IncomingMessage,
    connector: Connector,
    key: LoadedKey,
    message_type: str,
    checked: _Checked,
) -> bool:
    """Which signature the message carries, its algorithms, and what sign-in's own check
    (requests.check_signature) says of it, in words."""
    facts = signature_facts(root, incoming)
    checked.summary["signature"] = (
        f"{algorithm_label(facts.algorithm)} in the {facts.where}"
        + (f", digest {', '.join(_DIGEST_NAMES.get(uri, uri) for uri in facts.digests)}" if facts.digests else "")
        if facts.signed
        else "not signed"
    )
    try:
        verified = check_signature(root, xml, incoming, connector, key, message_type)
    except SamlRequestError as error:
        checked.problems.append(_signature_problem(error, facts))
        return facts.signed
    if verified:
        checked.summary["signature"] += ", verified"
    elif facts.signed:
        checked.problems.append(
            _problem(
                WARN,
                "Signed, but the connector has no SP signing certificate",
                "The signature cannot be checked: upload the app's signing certificate (or its metadata).",
            )
        )
    else:
        checked.problems.append(_problem(INFO, "Not signed (this connector does not require signed requests)"))
    return facts.signed


def _signature_problem(error: SamlRequestError, facts: SignatureFacts) -> dict:
    if error.reason == "unsigned_request":
        return _problem(
            BAD,
            "Unsigned, though the connector requires signed requests",
            "Have the app sign its requests, or turn off “require signed requests”.",
        )
    if error.reason == "weak_signature":
        if facts.algorithm in _SHA1_URIS or any(uri in _SHA1_URIS for uri in facts.digests):
            return _problem(
                BAD,
                "Request signed with SHA-1",
                "SHA-1 signatures can be forged and the portal refuses them: set the app to sign with RSA-SHA256.",
            )
        return _problem(BAD, "Unknown signature algorithm", error.message)
    return _problem(BAD, "Signature invalid", error.message)


def _check_destination(root: etree._Element, expected: str, signed: bool, checked: _Checked) -> None:
    destination = root.get("Destination") or ""
    checked.summary["destination"] = destination
    if destination and destination != expected:
        checked.problems.append(
            _problem(BAD, "Destination is not this connector's URL", f"Sent to {destination}, expected {expected}.")
        )
    elif not destination and signed:
        checked.problems.append(
            _problem(BAD, "Signed but without Destination", "A signed request must say where it is going.")
        )


def _check_issue_instant(root: etree._Element, received: datetime.datetime, checked: _Checked) -> None:
    value = root.get("IssueInstant")
    checked.summary["issue_instant"] = value or ""
    issued = _instant(value)
    if issued is None:
        checked.problems.append(_problem(BAD, "IssueInstant is missing or not a UTC date-time", value or ""))
        return
    age = (received - issued).total_seconds()
    if age > settings.SAML_IDP_REQUEST_MAX_AGE_SECONDS:
        checked.problems.append(
            _problem(
                BAD,
                "IssueInstant too old",
                f"Issued {int(age)} seconds before it arrived (at most {settings.SAML_IDP_REQUEST_MAX_AGE_SECONDS} "
                "accepted): the request was replayed or the app's clock is behind.",
            )
        )
    elif -age > settings.SAML_IDP_CLOCK_SKEW_SECONDS:
        checked.problems.append(
            _problem(
                BAD,
                "IssueInstant in the future",
                f"Dated {int(-age)} seconds after it arrived: the app server's clock is ahead.",
            )
        )


def _check_acs(root: etree._Element, connector: Connector, checked: _Checked) -> None:
    registered = [acs["url"] for acs in connector.sso.acs_urls]
    url = root.get("AssertionConsumerServiceURL")
    index = root.get("AssertionConsumerServiceIndex")
    binding = root.get("ProtocolBinding")
    checked.summary["acs_url"] = url or ""
    if binding and binding != BINDING_POST:
        checked.problems.append(
            _problem(BAD, "Asks for a response binding the portal does not send", f"{binding}: only HTTP-POST is sent.")
        )
    if not registered:
        checked.problems.append(_problem(BAD, "The connector has no ACS URL configured"))
        return
    if url is not None and index is not None:
        checked.problems.append(
            _problem(BAD, "Both AssertionConsumerServiceURL and AssertionConsumerServiceIndex are given")
        )
    if url is not None and url not in registered:
        checked.problems.append(
            _problem(
                BAD,
                "ACS URL not registered",
                f"{url} is not one of {connector.name}'s ACS URLs ({', '.join(registered)}).",
            )
        )
    elif index is not None and not any(str(acs.get("index")) == index.strip() for acs in connector.sso.acs_urls):
        checked.problems.append(_problem(BAD, "ACS index not registered", f"Index {index}."))
    elif url is None and index is None:
        checked.summary["acs_url"] = registered[0]
        checked.problems.append(
            _problem(INFO, "No ACS URL in the request", f"The response goes to the default one, {registered[0]}.")
        )


def _check_authn_options(root: etree._Element, connector: Connector, checked: _Checked) -> None:
    policy = root.find(f"{_P}NameIDPolicy")
    requested = (policy.get("Format") or "") if policy is not None else ""
    sent = NAMEID_FORMATS[connector.sso.nameid_format]
    checked.summary["nameid_policy"] = requested
    if requested not in _UNSPECIFIED_FORMATS and requested != sent:
        checked.problems.append(
            _problem(
                WARN,
                "NameIDPolicy format differs from the connector's",
                f"The app asks for {requested}; the connector sends {sent}. Strict apps refuse the response.",
            )
        )
    for attribute, title, detail in (
        ("ForceAuthn", "ForceAuthn", "The user must sign in again even with a portal session."),
        ("IsPassive", "IsPassive", "The portal must answer without showing any page (an error if not signed in)."),
    ):
        if (root.get(attribute) or "").strip().lower() in ("true", "1"):
            checked.summary[attribute] = True
            checked.problems.append(_problem(INFO, title, detail))
    context = root.find(f"{_P}RequestedAuthnContext")
    if context is not None:
        classes = [_text(element) for element in context.findall(f"{_A}AuthnContextClassRef")]
        checked.problems.append(
            _problem(
                INFO,
                "Asks for an authentication context",
                f"{context.get('Comparison') or 'exact'}: {', '.join(classes) or '(none)'}.",
            )
        )


def check_request(
    connector: Connector,
    key: LoadedKey,
    incoming: IncomingMessage,
    *,
    kind: str,
    received: datetime.datetime | None = None,
) -> _Checked:
    """Every problem of an AuthnRequest, LogoutRequest or LogoutResponse against the connector's settings."""
    received = received or timezone.now()
    checked = _Checked()
    decoded = _decode(incoming, checked)
    if decoded is None:
        return checked
    xml, root = decoded
    checked.root = root
    expected_tag, message_type = _RECEIVED_KINDS[kind]
    if not _check_envelope(root, connector, expected_tag, checked):
        return checked
    signed = _check_signature_of(root, xml, incoming, connector, key, message_type, checked)
    expected_destination = connector.sso_url if kind == TraceKind.AUTHN_REQUEST else endpoints.slo_url(connector)
    _check_destination(root, expected_destination, signed, checked)
    _check_issue_instant(root, received, checked)
    if kind == TraceKind.AUTHN_REQUEST:
        _check_acs(root, connector, checked)
        _check_authn_options(root, connector, checked)
    elif kind == TraceKind.LOGOUT_REQUEST:
        name_id = root.find(f"{_A}NameID")
        checked.summary["name_id"] = _text(name_id)
        if name_id is None:
            checked.problems.append(_problem(BAD, "The LogoutRequest names no user (NameID missing)"))
    else:
        checked.summary["in_response_to"] = root.get("InResponseTo") or ""
        status = _status_label(root)
        checked.summary["status"] = status
        if _status_value(root) != STATUS_SUCCESS:
            checked.problems.append(
                _problem(WARN, f"The app did not sign the user out: {status or 'no status'}", _status_message(root))
            )
    return checked


# The element and the replay-cache message type of each kind of message the portal receives.
_RECEIVED_KINDS = {
    TraceKind.AUTHN_REQUEST: ("AuthnRequest", "authn_request"),
    TraceKind.LOGOUT_REQUEST: ("LogoutRequest", "logout_request"),
    TraceKind.LOGOUT_RESPONSE_RECEIVED: ("LogoutResponse", "logout_response"),
}


def _status_value(root: etree._Element) -> str:
    status = root.find(f"{_P}Status/{_P}StatusCode")
    return (status.get("Value") or "") if status is not None else ""


def _status_label(root: etree._Element) -> str:
    """`Success`, or `Responder / RequestDenied`: the status code's last part, with its sub-status."""
    status = root.find(f"{_P}Status/{_P}StatusCode")
    if status is None:
        return ""
    label = (status.get("Value") or "").rsplit(":", 1)[-1]
    sub_status = status.find(f"{_P}StatusCode")
    if sub_status is not None:
        label += " / " + (sub_status.get("Value") or "").rsplit(":", 1)[-1]
    return label


def _status_message(root: etree._Element) -> str:
    return _text(root.find(f"{_P}Status/{_P}StatusMessage"))


def record_request(
    connector: Connector,
    key: LoadedKey,
    incoming: IncomingMessage,
    *,
    kind: str,
    client_ip: str | None,
    user: Any,
    error: SamlRequestError | None = None,
) -> SamlTraceRecord:
    """Record an AuthnRequest, LogoutRequest or LogoutResponse as received, with its problems and the
    portal's verdict."""
    checked = check_request(connector, key, incoming, kind=kind)
    if error is not None and error.reason == "replay":
        checked.problems.insert(0, _problem(BAD, "Replayed request", error.message))
    return _store(
        connector,
        kind=kind,
        outcome=TraceOutcome.REFUSED if error else TraceOutcome.ACCEPTED,
        binding=incoming.binding,
        message_id=checked.message_id,
        relay_state=incoming.relay_state[:_MAX_RELAY_STATE_STORED],
        message=checked.root,
        client_ip=client_ip,
        error_reason=error.reason if error else "",
        error=error.message if error else "",
        problems=checked.problems,
        summary=checked.summary,
        **_who(user),
    )


# --- Responses sent -----------------------------------------------------------------------------


def describe_response(root: etree._Element) -> tuple[dict, list[dict]]:
    """What a Response says (status, NameID, attributes, audience, signatures) and what to note."""
    summary: dict[str, Any] = {
        "destination": root.get("Destination") or "",
        "in_response_to": root.get("InResponseTo") or "",
    }
    problems: list[dict] = []
    summary["status"] = _status_label(root)
    if _status_value(root) != STATUS_SUCCESS:
        problems.append(_problem(WARN, f"Error status sent: {summary['status']}", _status_message(root)))
    response_signature, _ = _signature_algorithms(root.find(f"{_DS}Signature"))
    summary["response_signature"] = algorithm_label(response_signature) if response_signature else "not signed"
    if root.find(f"{_A}EncryptedAssertion") is not None:
        summary["encrypted"] = True
        problems.append(
            _problem(
                INFO,
                "Assertion encrypted for the app",
                "Its contents are not stored here; the assertion preview shows what it holds.",
            )
        )
    assertion = root.find(f"{_A}Assertion")
    assertion_signature = ""
    if assertion is not None:
        assertion_signature, _ = _signature_algorithms(assertion.find(f"{_DS}Signature"))
        summary["assertion_signature"] = algorithm_label(assertion_signature) if assertion_signature else "not signed"
        summary.update(describe_assertion(assertion))
    if {response_signature, assertion_signature} & _SHA1_URIS:
        problems.append(_problem(WARN, "Signed with SHA-1", "RSA-SHA1 signatures can be forged."))
    return summary, problems


def describe_assertion(assertion: etree._Element) -> dict:
    name_id = assertion.find(f"{_A}Subject/{_A}NameID")
    confirmation = assertion.find(f"{_A}Subject/{_A}SubjectConfirmation/{_A}SubjectConfirmationData")
    conditions = assertion.find(f"{_A}Conditions")
    statement = assertion.find(f"{_A}AuthnStatement")
    return {
        "name_id": _text(name_id),
        "name_id_format": (name_id.get("Format") or "") if name_id is not None else "",
        "recipient": (confirmation.get("Recipient") or "") if confirmation is not None else "",
        "audience": _text(assertion.find(f"{_A}Conditions/{_A}AudienceRestriction/{_A}Audience")),
        "not_before": (conditions.get("NotBefore") or "") if conditions is not None else "",
        "not_on_or_after": (conditions.get("NotOnOrAfter") or "") if conditions is not None else "",
        "session_not_on_or_after": (statement.get("SessionNotOnOrAfter") or "") if statement is not None else "",
        "attributes": [
            {
                "name": attribute.get("Name") or "",
                "values": [_text(value) for value in attribute.findall(f"{_A}AttributeValue")],
            }
            for attribute in assertion.findall(f"{_A}AttributeStatement/{_A}Attribute")
        ],
    }


def record_response(
    connector: Connector,
    *,
    saml_response: str,
    relay_state: str,
    in_response_to: str,
    client_ip: str | None,
    user: Any,
) -> SamlTraceRecord:
    """Record a Response as sent (`saml_response` is the HTTP-POST binding's base64 value)."""
    try:
        root = parse_untrusted_xml(base64.b64decode(saml_response), max_bytes=settings.SAML_IDP_MAX_MESSAGE_BYTES * 4)
    except (binascii.Error, UnsafeXMLError) as error:
        root, summary, problems = None, {}, [_problem(WARN, "The sent response could not be shown", str(error))]
    else:
        summary, problems = describe_response(root)
    summary.setdefault("in_response_to", in_response_to)
    return _store(
        connector,
        kind=TraceKind.RESPONSE,
        outcome=TraceOutcome.SENT,
        binding=BINDING_POST,
        message_id=(root.get("ID") or "")[:256] if root is not None else "",
        relay_state=relay_state[:_MAX_RELAY_STATE_STORED],
        message=root,
        client_ip=client_ip,
        problems=problems,
        summary=summary,
        **_who(user),
    )


def record_refused_response(
    connector: Connector, *, error: SamlRequestError, in_response_to: str, client_ip: str | None, user: Any
) -> SamlTraceRecord:
    """A sign-in the portal would not answer with an assertion (user not assigned, app switched off, ...)."""
    title = (
        "No response sent: the app is switched off in the portal"
        if error.reason == "connector_disabled"
        else "No response sent: the user was refused"
    )
    return _store(
        connector,
        kind=TraceKind.RESPONSE,
        outcome=TraceOutcome.REFUSED,
        client_ip=client_ip,
        error_reason=error.reason,
        error=error.message,
        problems=[_problem(BAD, title, error.message)],
        summary={"in_response_to": in_response_to},
        **_who(user),
    )


def record_logout_response_sent(
    connector: Connector, *, xml: bytes, binding: str, relay_state: str, client_ip: str | None, user: Any
) -> SamlTraceRecord:
    """Record the LogoutResponse the portal sends an app that asked to sign the user out."""
    try:
        root = parse_untrusted_xml(xml, max_bytes=settings.SAML_IDP_MAX_MESSAGE_BYTES * 4)
    except UnsafeXMLError as error:
        return _store(
            connector,
            kind=TraceKind.LOGOUT_RESPONSE_SENT,
            outcome=TraceOutcome.SENT,
            binding=binding,
            client_ip=client_ip,
            problems=[_problem(WARN, "The sent LogoutResponse could not be shown", str(error))],
            **_who(user),
        )
    summary, problems = describe_response(root)
    if binding == BINDING_REDIRECT:
        # HTTP-Redirect signs the query string, not the XML (services.slo_complete).
        algorithm = SIGNATURE_ALGORITHMS.get(connector.sso.signature_algorithm, "")
        summary["response_signature"] = f"{algorithm_label(algorithm)} in the query string (HTTP-Redirect)"
    return _store(
        connector,
        kind=TraceKind.LOGOUT_RESPONSE_SENT,
        outcome=TraceOutcome.SENT,
        binding=binding,
        message_id=(root.get("ID") or "")[:256],
        relay_state=relay_state[:_MAX_RELAY_STATE_STORED],
        message=root,
        client_ip=client_ip,
        problems=problems,
        summary=summary,
        **_who(user),
    )


# --- Assertion preview --------------------------------------------------------------------------


@dataclass(frozen=True)
class AssertionPreview:
    """The assertion `user` would get from `connector` now: built, never signed nor sent."""

    allowed: bool
    refusal: str
    acs_url: str
    summary: dict
    xml: str
    signed_response: bool
    signed_assertion: bool
    signature_algorithm: str
    encrypted: bool
    transient_name_id: bool


def assertion_preview(connector: Connector, user: User, *, now: datetime.datetime | None = None) -> AssertionPreview:
    """Built by the same code as a real sign-in (`subject_for`, the assertion of `responses.py`)."""
    now = now or timezone.now()
    sso = connector.sso
    refusal = ""
    facts = sign_in_facts(connector.pk, user.pk)  # as sso_issue: one read for the check and the subject
    try:
        check_sign_in_allowed(connector, user, facts)
    except SamlRequestError as error:
        refusal = error.message
    try:
        acs_url = default_acs_url(connector)
    except SamlRequestError as error:
        refusal = refusal or error.message
        acs_url = ""
    subject = subject_for(connector, user, facts)
    session = Session(index="_preview", authn_instant=now)
    assertion = _assertion(connector, subject, session, acs_url=acs_url, in_response_to=None, now=now)
    return AssertionPreview(
        allowed=not refusal,
        refusal=refusal,
        acs_url=acs_url,
        summary=describe_assertion(assertion),
        xml=pretty_xml(assertion),
        signed_response=sso.sign_response,
        signed_assertion=sso.sign_assertion,
        signature_algorithm=sso.signature_algorithm.upper(),
        encrypted=sso.encrypt_assertions and bool(sso.sp_encryption_cert),
        transient_name_id=sso.nameid_format == "transient",
    )
