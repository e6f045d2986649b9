"""Parse and verify what SPs send into dataclasses; every refusal is one SamlRequestError.

The order matters: size and DTD checks before any parsing that could expand the document,
issuer before signature (to know whose certificate applies), signature before the fields are
trusted, and the replay cache last (so that junk cannot burn the ids of real requests).
"""

import datetime
import re
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from lxml import etree

from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.connectors.models import Connector
from apps.saml_idp import bindings, replay
from apps.saml_idp.constants import (
    ACCEPTED_DIGEST_ALGORITHMS,
    ACCEPTED_SIGNATURE_ALGORITHMS,
    ASSERTION_NS,
    BINDING_POST,
    BINDING_REDIRECT,
    DS_NS,
    PROTOCOL_NS,
)
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.signing import XmlSignatureError, verify_redirect_signature

__all__ = [
    "AuthnRequestInfo",
    "LogoutRequestInfo",
    "LogoutResponseInfo",
    "SamlRequestError",
    "parse_authn_request",
    "parse_logout_request",
    "parse_logout_response",
]

_SAML_ID = re.compile(r"^[A-Za-z_][\w.-]{0,255}$")


@dataclass(frozen=True)
class AuthnRequestInfo:
    """A verified AuthnRequest, reduced to what the response needs."""

    id: str
    issuer: str
    issue_instant: str
    binding: str
    acs_url: str
    destination: str
    force_authn: bool
    is_passive: bool
    relay_state: str
    signed: bool
    requested_nameid_format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuthnRequestInfo":
        return cls(**data)


@dataclass(frozen=True)
class LogoutRequestInfo:
    id: str
    issuer: str
    name_id: str
    session_indexes: tuple[str, ...]
    binding: str
    relay_state: str
    signed: bool


@dataclass(frozen=True)
class LogoutResponseInfo:
    """An app's verified answer to the LogoutRequest the portal sent it at sign-out."""

    id: str
    issuer: str
    in_response_to: str
    status: str
    signed: bool


@dataclass(frozen=True)
class IncomingMessage:
    """One SAML message as the binding delivered it."""

    binding: str
    message: str  # SAMLRequest, still encoded
    relay_state: str = ""
    sig_alg: str = ""
    signature: str = ""
    # Redirect binding: the query string exactly as received, for the detached signature.
    raw_query: str = ""


def _refuse(reason: str, message: str, **kwargs) -> SamlRequestError:
    return SamlRequestError(reason, message, **kwargs)


def check_relay_state(relay_state: str) -> str:
    if len(relay_state.encode()) > settings.SAML_IDP_MAX_RELAY_STATE_BYTES:
        raise _refuse(
            "relay_state_too_long", f"RelayState is longer than {settings.SAML_IDP_MAX_RELAY_STATE_BYTES} bytes."
        )
    return relay_state


def decode_message(incoming: IncomingMessage) -> tuple[bytes, etree._Element]:
    """The XML of a message as its binding carries it, parsed safely; refusals name their reason."""
    xml = message_bytes(incoming)
    return xml, parse_message_xml(xml)


def message_bytes(incoming: IncomingMessage) -> bytes:
    if not incoming.message:
        raise _refuse("missing_request", "No SAML request was sent: start the sign-in from the app.")
    if incoming.binding == BINDING_REDIRECT:
        return bindings.decode_redirect_message(incoming.message)
    if incoming.binding == BINDING_POST:
        return bindings.decode_post_message(incoming.message)
    raise _refuse("unsupported_binding", "Only the HTTP-Redirect and HTTP-POST bindings are supported.")


def parse_message_xml(xml: bytes) -> etree._Element:
    try:
        return parse_untrusted_xml(xml, max_bytes=settings.SAML_IDP_MAX_MESSAGE_BYTES)
    except UnsafeXMLError as exc:
        reason = "dtd" if "DTD" in str(exc) else ("too_large" if "larger" in str(exc) else "malformed")
        raise _refuse(reason, f"The SAML message was refused: {exc}") from exc


def _parse_instant(value: str | None) -> datetime.datetime:
    try:
        parsed = parse_datetime(value or "")
    except ValueError:  # well-formed but impossible, such as month 13
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _refuse("malformed", "IssueInstant is missing or not a UTC date-time.")
    return parsed


def _check_common(root: etree._Element, connector: Connector, expected_tag: str) -> tuple[str, str]:
    """Element, version, ID and issuer; returns (id, issuer)."""
    if root.tag != f"{{{PROTOCOL_NS}}}{expected_tag}":
        raise _refuse("malformed", f"Expected a samlp:{expected_tag}, got {etree.QName(root).localname}.")
    if root.get("Version") != "2.0":
        raise _refuse("malformed", "Only SAML 2.0 messages are accepted.")
    message_id = root.get("ID") or ""
    if not _SAML_ID.match(message_id):
        raise _refuse("malformed", "The message ID is missing or not a valid XML ID.")
    issuer_element = root.find(f"{{{ASSERTION_NS}}}Issuer")
    issuer = (issuer_element.text or "").strip() if issuer_element is not None else ""
    sp_entity_id = connector.sso.sp_entity_id
    if not sp_entity_id or issuer != sp_entity_id:
        raise _refuse(
            "unknown_sp",
            f"The request comes from {issuer or 'an unnamed SP'!r}, which is not the app configured for "
            f"{connector.name}.",
        )
    return message_id, issuer


@dataclass(frozen=True)
class SignatureFacts:
    """What signature a received message carries: where, and with which algorithms."""

    where: str  # "query string (HTTP-Redirect)", "XML", or "" when unsigned
    algorithm: str  # the SignatureMethod / SigAlg URI
    digests: tuple[str, ...] = ()

    @property
    def signed(self) -> bool:
        return bool(self.algorithm or self.where)


def _xml_signature_facts(root: etree._Element) -> SignatureFacts | None:
    signature = root.find(f"{{{DS_NS}}}Signature")
    if signature is None:
        return None
    method = signature.find(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}SignatureMethod")
    digests = signature.findall(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference/{{{DS_NS}}}DigestMethod")
    return SignatureFacts(
        "XML",
        (method.get("Algorithm") or "") if method is not None else "",
        tuple(digest.get("Algorithm") or "" for digest in digests),
    )


def signature_facts(root: etree._Element, incoming: IncomingMessage) -> SignatureFacts:
    """Read, not judged: check_signature decides."""
    if incoming.binding == BINDING_REDIRECT and (incoming.signature or incoming.sig_alg):
        return SignatureFacts("query string (HTTP-Redirect)", incoming.sig_alg)
    return _xml_signature_facts(root) or SignatureFacts("", "")


def check_signature(
    root: etree._Element, xml: bytes, incoming: IncomingMessage, connector: Connector, key: LoadedKey, message: str
) -> bool:
    """Verify whatever signature the message has; refuse unsigned ones when the connector says so.

    Returns whether a signature was verified (False when the connector has no SP signing
    certificate to verify it with). Sign-in, logout and the tracer all judge signatures here."""
    sso = connector.sso
    certificate = sso.sp_signing_cert
    signed = False
    if incoming.binding == BINDING_REDIRECT and (incoming.signature or incoming.sig_alg):
        if incoming.sig_alg not in ACCEPTED_SIGNATURE_ALGORITHMS:
            raise _refuse(
                "weak_signature",
                f"Signature algorithm {incoming.sig_alg or 'none'} is refused: sign with RSA-SHA256 or stronger.",
            )
        if certificate:
            raw = bindings.raw_query_parameters(incoming.raw_query)
            if "Signature" not in raw or "SigAlg" not in raw:
                raise _refuse("bad_signature", "The request has SigAlg without Signature.")
            parameter = "SAMLRequest" if "SAMLRequest" in raw else "SAMLResponse"
            try:
                verify_redirect_signature(
                    bindings.redirect_signed_octets(raw, parameter), incoming.signature, incoming.sig_alg, certificate
                )
            except XmlSignatureError as exc:
                raise _refuse("bad_signature", str(exc)) from exc
            signed = True
    embedded = _xml_signature_facts(root)
    if embedded is not None:
        facts = embedded
        if facts.algorithm not in ACCEPTED_SIGNATURE_ALGORITHMS:
            raise _refuse("weak_signature", "The request is signed with SHA-1 or an unknown algorithm: refused.")
        if any(digest not in ACCEPTED_DIGEST_ALGORITHMS for digest in facts.digests):
            raise _refuse("weak_signature", "The request's signature uses a SHA-1 or unknown digest: refused.")
        if certificate:
            # Imported here: server.py (pysaml2) loads only when a signed POST actually arrives.
            from apps.saml_idp.server import verify_embedded_signature

            try:
                verify_embedded_signature(connector, key, xml, message)
            except XmlSignatureError as exc:
                raise _refuse("bad_signature", f"The request's signature was refused: {exc}") from exc
            signed = True
    if sso.require_signed_requests and not signed:
        raise _refuse("unsigned_request", f"{connector.name} requires signed requests, and this one is not signed.")
    return signed


def _check_destination(root: etree._Element, connector: Connector, signed: bool, expected: str) -> str:
    destination = root.get("Destination") or ""
    if destination and destination != expected:
        raise _refuse("wrong_destination", f"The request is addressed to {destination}, not to {expected}.")
    if not destination and signed:
        # SAML bindings 3.4.5.2 / 3.5.5.2: a signed message must say where it is going.
        raise _refuse("missing_destination", "A signed request must carry its Destination.")
    return destination


def _check_issue_instant(root: etree._Element, now: datetime.datetime) -> str:
    issued = _parse_instant(root.get("IssueInstant"))
    age = (now - issued).total_seconds()
    if age > settings.SAML_IDP_REQUEST_MAX_AGE_SECONDS:
        raise _refuse("stale_request", "The request was issued too long ago: start the sign-in from the app again.")
    if -age > settings.SAML_IDP_CLOCK_SKEW_SECONDS:
        raise _refuse("future_request", "The request is dated in the future: check the app server's clock.")
    return root.get("IssueInstant")


def _resolve_acs(root: etree._Element, connector: Connector) -> str:
    registered = connector.sso.acs_urls
    if not registered:
        raise _refuse("acs_not_registered", f"{connector.name} has no Assertion Consumer Service URL configured.")
    url = root.get("AssertionConsumerServiceURL")
    index = root.get("AssertionConsumerServiceIndex")
    binding = root.get("ProtocolBinding")
    if binding and binding != BINDING_POST:
        raise _refuse("unsupported_binding", "Responses are sent with the HTTP-POST binding only.", http_status=400)
    if url is not None and index is not None:
        raise _refuse("malformed", "AssertionConsumerServiceURL and AssertionConsumerServiceIndex exclude each other.")
    if url is not None:
        for acs in registered:
            if acs["url"] == url:
                return url
        raise _refuse("acs_not_registered", f"The ACS URL {url} is not registered for {connector.name}.")
    if index is not None:
        for acs in registered:
            if str(acs.get("index")) == index.strip():
                return acs["url"]
        raise _refuse("acs_not_registered", f"ACS index {index} is not registered for {connector.name}.")
    return registered[0]["url"]


def _bool_attribute(root: etree._Element, name: str) -> bool:
    return (root.get(name) or "false").strip().lower() in ("true", "1")


def parse_authn_request(
    connector: Connector, key: LoadedKey, incoming: IncomingMessage, *, now: datetime.datetime | None = None
) -> AuthnRequestInfo:
    """Decode, verify and apply the portal's policy to an AuthnRequest for `connector`."""
    now = now or timezone.now()
    relay_state = check_relay_state(incoming.relay_state)
    xml, root = decode_message(incoming)
    request_id, issuer = _check_common(root, connector, "AuthnRequest")
    signed = check_signature(root, xml, incoming, connector, key, "authn_request")
    destination = _check_destination(root, connector, signed, connector.sso_url)
    issue_instant = _check_issue_instant(root, now)
    acs_url = _resolve_acs(root, connector)
    policy = root.find(f"{{{PROTOCOL_NS}}}NameIDPolicy")
    info = AuthnRequestInfo(
        id=request_id,
        issuer=issuer,
        issue_instant=issue_instant,
        binding=incoming.binding,
        acs_url=acs_url,
        destination=destination,
        force_authn=_bool_attribute(root, "ForceAuthn"),
        is_passive=_bool_attribute(root, "IsPassive"),
        relay_state=relay_state,
        signed=signed,
        requested_nameid_format=(policy.get("Format") or "") if policy is not None else "",
    )
    _refuse_replay(
        connector,
        "authn_request",
        request_id,
        "This sign-in request was already used: start the sign-in from the app again.",
    )
    return info


def _refuse_replay(connector: Connector, purpose: str, message_id: str, message: str) -> None:
    """Remember the message id (the cache last: junk never burns a real id); a second use is refused."""
    if not replay.remember_once(
        purpose=purpose,
        scope=str(connector.pk),
        message_id=message_id,
        ttl_seconds=settings.SAML_IDP_REPLAY_WINDOW_SECONDS,
    ):
        raise _refuse("replay", message)


def _verified_logout_message(
    connector: Connector,
    key: LoadedKey,
    incoming: IncomingMessage,
    tag: str,
    expected_destination: str,
    now: datetime.datetime,
) -> tuple[etree._Element, str, str, bool]:
    """A LogoutRequest or LogoutResponse decoded and checked: (root, id, issuer, signed)."""
    xml, root = decode_message(incoming)
    message_id, issuer = _check_common(root, connector, tag)
    message_type = "logout_request" if tag == "LogoutRequest" else "logout_response"
    signed = check_signature(root, xml, incoming, connector, key, message_type)
    _check_destination(root, connector, signed, expected_destination)
    _check_issue_instant(root, now)
    return root, message_id, issuer, signed


def parse_logout_request(
    connector: Connector,
    key: LoadedKey,
    incoming: IncomingMessage,
    *,
    expected_destination: str,
    now: datetime.datetime | None = None,
) -> LogoutRequestInfo:
    relay_state = check_relay_state(incoming.relay_state)
    root, request_id, issuer, signed = _verified_logout_message(
        connector, key, incoming, "LogoutRequest", expected_destination, now or timezone.now()
    )
    name_id = root.find(f"{{{ASSERTION_NS}}}NameID")
    info = LogoutRequestInfo(
        id=request_id,
        issuer=issuer,
        name_id=(name_id.text or "") if name_id is not None else "",
        session_indexes=tuple((e.text or "").strip() for e in root.findall(f"{{{PROTOCOL_NS}}}SessionIndex")),
        binding=incoming.binding,
        relay_state=relay_state,
        signed=signed,
    )
    _refuse_replay(connector, "logout_request", request_id, "This logout request was already used.")
    return info


def parse_logout_response(
    connector: Connector,
    key: LoadedKey,
    incoming: IncomingMessage,
    *,
    expected_destination: str,
    now: datetime.datetime | None = None,
) -> LogoutResponseInfo:
    """The app's LogoutResponse to a front-channel LogoutRequest of the portal's sign-out."""
    check_relay_state(incoming.relay_state)
    root, response_id, issuer, signed = _verified_logout_message(
        connector, key, incoming, "LogoutResponse", expected_destination, now or timezone.now()
    )
    status = root.find(f"{{{PROTOCOL_NS}}}Status/{{{PROTOCOL_NS}}}StatusCode")
    info = LogoutResponseInfo(
        id=response_id,
        issuer=issuer,
        in_response_to=root.get("InResponseTo") or "",
        status=(status.get("Value") or "") if status is not None else "",
        signed=signed,
    )
    _refuse_replay(connector, "logout_response", response_id, "This logout response was already used.")
    return info
