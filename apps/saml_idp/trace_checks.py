"""The tracer's checks of what an SP sends: every problem of an AuthnRequest, LogoutRequest or
LogoutResponse against the connector's settings, in plain words.

Independent of the parser in `requests.py`, which stops at the first refusal, but never a second
implementation of its rules: decoding and the signature judgement are the parser's own."""

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone
from lxml import etree

from apps.connectors import idp_urls
from apps.connectors.models import Connector
from apps.saml_idp.constants import (
    BINDING_POST,
    NAMEID_FORMATS,
    STATUS_SUCCESS,
)
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.models import TraceKind
from apps.saml_idp.requests import (
    IncomingMessage,
    SignatureFacts,
    check_signature,
    message_bytes,
    parse_message_xml,
    signature_facts,
)
from apps.saml_idp.trace_xml import (
    DIGEST_NAMES,
    SAML,
    SAMLP,
    SHA1_URIS,
    UNSPECIFIED_FORMATS,
    algorithm_label,
    element_text,
    parse_instant,
)

BAD, WARN, INFO = "bad", "warn", "info"


LEVEL_ORDER = {BAD: 0, WARN: 1, INFO: 2}


def problem(level: str, title: str, detail: str = "") -> dict:
    return {"level": level, "title": title, "detail": detail}


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
        checked.problems.append(problem(BAD, "The message could not be decoded", error.message))
        return None
    try:
        return xml, parse_message_xml(xml)
    except SamlRequestError as error:
        checked.problems.append(problem(BAD, "The message is not acceptable XML", error.message))
        return None


def _check_envelope(root: etree._Element, connector: Connector, expected_tag: str, checked: _Checked) -> bool:
    """Element, version, ID and issuer; False when the message is not the expected element at all."""
    if root.tag != f"{SAMLP}{expected_tag}":
        checked.problems.append(
            problem(BAD, f"Not a samlp:{expected_tag}", f"The message is a {etree.QName(root).localname}.")
        )
        return False
    if root.get("Version") != "2.0":
        checked.problems.append(problem(BAD, "Not SAML 2.0", f"Version is {root.get('Version') or 'missing'}."))
    checked.message_id = (root.get("ID") or "")[:256]
    if not checked.message_id:
        checked.problems.append(problem(BAD, "The message has no ID"))
    issuer = element_text(root.find(f"{SAML}Issuer"))
    expected = connector.sso.sp_entity_id
    checked.summary["issuer"] = issuer
    if not issuer:
        checked.problems.append(problem(BAD, "The message has no Issuer", f"Expected {expected or '(not set)'}."))
    elif issuer != expected:
        checked.problems.append(
            problem(
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
        + (f", digest {', '.join(DIGEST_NAMES.get(uri, uri) for uri in facts.digests)}" if facts.digests else "")
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
            problem(
                WARN,
                "Signed, but the connector has no SP signing certificate",
                "The signature cannot be checked: upload the app's signing certificate (or its metadata).",
            )
        )
    else:
        checked.problems.append(problem(INFO, "Not signed (this connector does not require signed requests)"))
    return facts.signed


def _signature_problem(error: SamlRequestError, facts: SignatureFacts) -> dict:
    if error.reason == "unsigned_request":
        return problem(
            BAD,
            "Unsigned, though the connector requires signed requests",
            "Have the app sign its requests, or turn off “require signed requests”.",
        )
    if error.reason == "weak_signature":
        if facts.algorithm in SHA1_URIS or any(uri in SHA1_URIS for uri in facts.digests):
            return problem(
                BAD,
                "Request signed with SHA-1",
                "SHA-1 signatures can be forged and the portal refuses them: set the app to sign with RSA-SHA256.",
            )
        return problem(BAD, "Unknown signature algorithm", error.message)
    return problem(BAD, "Signature invalid", error.message)


def _check_destination(root: etree._Element, expected: str, signed: bool, checked: _Checked) -> None:
    destination = root.get("Destination") or ""
    checked.summary["destination"] = destination
    if destination and destination != expected:
        checked.problems.append(
            problem(BAD, "Destination is not this connector's URL", f"Sent to {destination}, expected {expected}.")
        )
    elif not destination and signed:
        checked.problems.append(
            problem(BAD, "Signed but without Destination", "A signed request must say where it is going.")
        )


def _check_issue_instant(root: etree._Element, received: datetime.datetime, checked: _Checked) -> None:
    value = root.get("IssueInstant")
    checked.summary["issue_instant"] = value or ""
    issued = parse_instant(value)
    if issued is None:
        checked.problems.append(problem(BAD, "IssueInstant is missing or not a UTC date-time", value or ""))
        return
    age = (received - issued).total_seconds()
    if age > settings.SAML_IDP_REQUEST_MAX_AGE_SECONDS:
        checked.problems.append(
            problem(
                BAD,
                "IssueInstant too old",
                f"Issued {int(age)} seconds before it arrived (at most {settings.SAML_IDP_REQUEST_MAX_AGE_SECONDS} "
                "accepted): the request was replayed or the app's clock is behind.",
            )
        )
    elif -age > settings.SAML_IDP_CLOCK_SKEW_SECONDS:
        checked.problems.append(
            problem(
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
            problem(BAD, "Asks for a response binding the portal does not send", f"{binding}: only HTTP-POST is sent.")
        )
    if not registered:
        checked.problems.append(problem(BAD, "The connector has no ACS URL configured"))
        return
    if url is not None and index is not None:
        checked.problems.append(
            problem(BAD, "Both AssertionConsumerServiceURL and AssertionConsumerServiceIndex are given")
        )
    if url is not None and url not in registered:
        checked.problems.append(
            problem(
                BAD,
                "ACS URL not registered",
                f"{url} is not one of {connector.name}'s ACS URLs ({', '.join(registered)}).",
            )
        )
    elif index is not None and not any(str(acs.get("index")) == index.strip() for acs in connector.sso.acs_urls):
        checked.problems.append(problem(BAD, "ACS index not registered", f"Index {index}."))
    elif url is None and index is None:
        checked.summary["acs_url"] = registered[0]
        checked.problems.append(
            problem(INFO, "No ACS URL in the request", f"The response goes to the default one, {registered[0]}.")
        )


def _check_authn_options(root: etree._Element, connector: Connector, checked: _Checked) -> None:
    policy = root.find(f"{SAMLP}NameIDPolicy")
    requested = (policy.get("Format") or "") if policy is not None else ""
    sent = NAMEID_FORMATS[connector.sso.nameid_format]
    checked.summary["nameid_policy"] = requested
    if requested not in UNSPECIFIED_FORMATS and requested != sent:
        checked.problems.append(
            problem(
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
            checked.problems.append(problem(INFO, title, detail))
    context = root.find(f"{SAMLP}RequestedAuthnContext")
    if context is not None:
        classes = [element_text(element) for element in context.findall(f"{SAML}AuthnContextClassRef")]
        checked.problems.append(
            problem(
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
    expected_destination = connector.sso_url if kind == TraceKind.AUTHN_REQUEST else idp_urls.slo_url(connector)
    _check_destination(root, expected_destination, signed, checked)
    _check_issue_instant(root, received, checked)
    if kind == TraceKind.AUTHN_REQUEST:
        _check_acs(root, connector, checked)
        _check_authn_options(root, connector, checked)
    elif kind == TraceKind.LOGOUT_REQUEST:
        name_id = root.find(f"{SAML}NameID")
        checked.summary["name_id"] = element_text(name_id)
        if name_id is None:
            checked.problems.append(problem(BAD, "The LogoutRequest names no user (NameID missing)"))
    else:
        checked.summary["in_response_to"] = root.get("InResponseTo") or ""
        status = status_label(root)
        checked.summary["status"] = status
        if status_value(root) != STATUS_SUCCESS:
            checked.problems.append(
                problem(WARN, f"The app did not sign the user out: {status or 'no status'}", status_message(root))
            )
    return checked


# The element and the replay-cache message type of each kind of message the portal receives.
_RECEIVED_KINDS = {
    TraceKind.AUTHN_REQUEST: ("AuthnRequest", "authn_request"),
    TraceKind.LOGOUT_REQUEST: ("LogoutRequest", "logout_request"),
    TraceKind.LOGOUT_RESPONSE_RECEIVED: ("LogoutResponse", "logout_response"),
}


def status_value(root: etree._Element) -> str:
    status = root.find(f"{SAMLP}Status/{SAMLP}StatusCode")
    return (status.get("Value") or "") if status is not None else ""


def status_label(root: etree._Element) -> str:
    """`Success`, or `Responder / RequestDenied`: the status code's last part, with its sub-status."""
    status = root.find(f"{SAMLP}Status/{SAMLP}StatusCode")
    if status is None:
        return ""
    label = (status.get("Value") or "").rsplit(":", 1)[-1]
    sub_status = status.find(f"{SAMLP}StatusCode")
    if sub_status is not None:
        label += " / " + (sub_status.get("Value") or "").rsplit(":", 1)[-1]
    return label


def status_message(root: etree._Element) -> str:
    return element_text(root.find(f"{SAMLP}Status/{SAMLP}StatusMessage"))
