"""Single logout with an upstream IdP, as its SP: the LogoutRequest the portal sends when someone who
signed in through the upstream signs out, the LogoutResponse that comes back, and the upstream's own
LogoutRequests and our answers. Plain protocol code: data in, data out, no HTTP request object.

Messages are decoded with the portal's bounded bindings (pysaml2 inflates a Redirect message with no
size cap), parsed without DTDs, and signed and verified in-process with the code the IdP side uses
(apps.saml_idp.bindings and .signing), with delegated login's key (apps.saml_sp.keys) and the
upstream's signing certificates from its metadata. SHA-1 signatures are refused.
"""

import datetime
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from django.conf import settings
from django.utils import timezone
from lxml import etree

from apps.common.pki import CertificateError, normalize_certificate_pem
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.saml_idp import bindings
from apps.saml_idp.constants import (
    ACCEPTED_DIGEST_ALGORITHMS,
    ACCEPTED_SIGNATURE_ALGORITHMS,
    ASSERTION_NS,
    BINDING_POST,
    BINDING_REDIRECT,
    DS_NS,
    PROTOCOL_NS,
    STATUS_SUCCESS,
)
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.logout import logout_request_element
from apps.saml_idp.responses import instant, new_id
from apps.saml_idp.signing import XmlSignatureError, sign_element, verify_element, verify_redirect_signature
from apps.saml_sp.models import UpstreamIdentityProvider

_MD = "urn:oasis:names:tc:SAML:2.0:metadata"


class LogoutMessageError(ValueError):
    """A logout message we do not act on; `reason` goes to the audit trail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class UpstreamSubject:
    """Who the upstream said the person is, and in which of its sessions (from the assertion)."""

    name_id: str
    name_id_format: str = ""
    name_qualifier: str = ""
    sp_name_qualifier: str = ""
    session_index: str = ""


@dataclass(frozen=True)
class OutgoingMessage:
    """A message for the browser to carry: a URL to load (Redirect) or a form to post (POST)."""

    binding: str
    url: str
    fields: dict[str, str] = field(default_factory=dict)
    message_id: str = ""


@dataclass(frozen=True)
class IncomingLogout:
    kind: str  # "request" or "response"
    message_id: str
    signed: bool
    relay_state: str
    # LogoutRequest
    name_id: str = ""
    name_id_format: str = ""
    session_indexes: tuple[str, ...] = ()
    # LogoutResponse
    in_response_to: str = ""
    status: str = ""


def _idp_descriptor(upstream: UpstreamIdentityProvider) -> etree._Element | None:
    try:
        root = parse_untrusted_xml(upstream.metadata_xml.encode(), max_bytes=settings.SAML_SP_MAX_METADATA_BYTES)
    except UnsafeXMLError:
        return None
    return root.find(f"{{{_MD}}}IDPSSODescriptor")


def upstream_slo_endpoint(upstream: UpstreamIdentityProvider, *, response: bool = False) -> tuple[str, str] | None:
    """(binding, URL) of the upstream's SingleLogoutService the browser can carry: Redirect, else POST.
    A response goes to its ResponseLocation when it has one."""
    descriptor = _idp_descriptor(upstream)
    if descriptor is None:
        return None
    services = descriptor.findall(f"{{{_MD}}}SingleLogoutService")
    for binding in (BINDING_REDIRECT, BINDING_POST):
        for service in services:
            if service.get("Binding") == binding and service.get("Location"):
                url = (service.get("ResponseLocation") if response else "") or service.get("Location")
                return binding, url.strip()
    return None


def upstream_signing_certificates(upstream: UpstreamIdentityProvider) -> list[str]:
    descriptor = _idp_descriptor(upstream)
    if descriptor is None:
        return []
    certificates = []
    for key in descriptor.findall(f"{{{_MD}}}KeyDescriptor"):
        if key.get("use") not in (None, "signing"):
            continue
        for element in key.iter(f"{{{DS_NS}}}X509Certificate"):
            body = "".join((element.text or "").split())
            if body:
                try:
                    certificates.append(normalize_certificate_pem(body))
                except CertificateError:
                    continue
    return certificates


def _issuer(parent: etree._Element, entity_id: str) -> None:
    etree.SubElement(parent, f"{{{ASSERTION_NS}}}Issuer").text = entity_id


def _outgoing(
    root: etree._Element, *, binding: str, url: str, parameter: str, key: LoadedKey, relay_state: str
) -> OutgoingMessage:
    if binding == BINDING_POST:
        sign_element(root, key.private_key, key.certificate_b64, "rsa-sha256")
        xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        fields = {parameter: bindings.encode_post_message(xml)}
        if relay_state:
            fields["RelayState"] = relay_state
        return OutgoingMessage(binding=binding, url=url, fields=fields, message_id=root.get("ID"))
    xml = etree.tostring(root, encoding="UTF-8")
    signed_url = bindings.redirect_url(url, parameter=parameter, xml=xml, relay_state=relay_state, key=key)
    return OutgoingMessage(binding=binding, url=signed_url, message_id=root.get("ID"))


def logout_request(
    upstream: UpstreamIdentityProvider,
    subject: UpstreamSubject,
    *,
    sp_entity_id: str,
    key: LoadedKey,
    relay_state: str = "",
    now: datetime.datetime | None = None,
) -> OutgoingMessage | None:
    """Our signed LogoutRequest for the upstream session `subject` names; None when the upstream
    has no SingleLogoutService the browser can reach."""
    endpoint = upstream_slo_endpoint(upstream)
    if endpoint is None:
        return None
    binding, url = endpoint
    root = logout_request_element(
        issuer=sp_entity_id,
        destination=url,
        name_id=subject.name_id,
        name_id_attributes={
            "Format": subject.name_id_format,
            "NameQualifier": subject.name_qualifier,
            "SPNameQualifier": subject.sp_name_qualifier,
        },
        session_index=subject.session_index,
        now=now,
    )
    return _outgoing(root, binding=binding, url=url, parameter="SAMLRequest", key=key, relay_state=relay_state)


def logout_response(
    upstream: UpstreamIdentityProvider,
    *,
    in_response_to: str,
    sp_entity_id: str,
    key: LoadedKey,
    relay_state: str = "",
    status: str = STATUS_SUCCESS,
    now: datetime.datetime | None = None,
) -> OutgoingMessage | None:
    """Our signed LogoutResponse to the upstream's LogoutRequest `in_response_to`."""
    endpoint = upstream_slo_endpoint(upstream, response=True)
    if endpoint is None:
        return None
    binding, url = endpoint
    p = f"{{{PROTOCOL_NS}}}"
    root = etree.Element(
        f"{p}LogoutResponse",
        nsmap={"samlp": PROTOCOL_NS, "saml": ASSERTION_NS},
        ID=new_id(),
        Version="2.0",
        IssueInstant=instant(now or timezone.now()),
        Destination=url,
        InResponseTo=in_response_to,
    )
    _issuer(root, sp_entity_id)
    etree.SubElement(etree.SubElement(root, f"{p}Status"), f"{p}StatusCode", Value=status)
    return _outgoing(root, binding=binding, url=url, parameter="SAMLResponse", key=key, relay_state=relay_state)


# --- Incoming ---------------------------------------------------------------------------------


def _decode(binding: str, value: str) -> etree._Element:
    try:
        xml = (
            bindings.decode_redirect_message(value)
            if binding == BINDING_REDIRECT
            else bindings.decode_post_message(value)
        )
        return parse_untrusted_xml(xml)
    except SamlRequestError as exc:
        raise LogoutMessageError(exc.reason, exc.message) from exc
    except UnsafeXMLError as exc:
        raise LogoutMessageError("malformed", str(exc)) from exc


def _verify_signature(
    root: etree._Element, *, binding: str, raw_query: str, certificates: list[str], parameter: str
) -> bool:
    """Verify the signature the message carries (Redirect: in the query; POST: enveloped); a bad or
    SHA-1 one is refused, an absent one is allowed (the caller decides what an unsigned one may do)."""
    if binding == BINDING_REDIRECT:
        try:
            raw = bindings.raw_query_parameters(raw_query)
        except SamlRequestError as exc:
            raise LogoutMessageError(exc.reason, exc.message) from exc
        if "Signature" not in raw and "SigAlg" not in raw:
            return False
        if "Signature" not in raw or "SigAlg" not in raw:
            raise LogoutMessageError("bad_signature", "SigAlg and Signature come together.")
        sig_alg, signature = unquote_plus(raw["SigAlg"]), unquote_plus(raw["Signature"])
        if sig_alg not in ACCEPTED_SIGNATURE_ALGORITHMS:
            raise LogoutMessageError("weak_signature", f"Signature algorithm {sig_alg!r} is refused.")
        octets = bindings.redirect_signed_octets(raw, parameter)
        for certificate in certificates:
            try:
                verify_redirect_signature(octets, signature, sig_alg, certificate)
                return True
            except XmlSignatureError:
                continue
        raise LogoutMessageError("bad_signature", "The signature does not verify with the IdP's certificates.")
    signature = root.find(f"{{{DS_NS}}}Signature")
    if signature is None:
        return False
    method = signature.find(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}SignatureMethod")
    digests = signature.findall(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference/{{{DS_NS}}}DigestMethod")
    if method is None or method.get("Algorithm") not in ACCEPTED_SIGNATURE_ALGORITHMS:
        raise LogoutMessageError("weak_signature", "The message is signed with SHA-1 or an unknown algorithm.")
    if any(digest.get("Algorithm") not in ACCEPTED_DIGEST_ALGORITHMS for digest in digests):
        raise LogoutMessageError("weak_signature", "The message's signature uses a SHA-1 or unknown digest.")
    for certificate in certificates:
        try:
            verify_element(root, certificate)
            return True
        except XmlSignatureError:
            continue
    raise LogoutMessageError("bad_signature", "The signature does not verify with the IdP's certificates.")


def _check_time(root: etree._Element, now: datetime.datetime) -> None:
    value = (root.get("IssueInstant") or "").strip()
    try:
        issued = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise LogoutMessageError("malformed", "IssueInstant is not a time.") from exc
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=datetime.UTC)
    age = (now - issued).total_seconds()
    if age > settings.SAML_SP_RESPONSE_MAX_AGE_SECONDS + settings.SAML_IDP_CLOCK_SKEW_SECONDS:
        raise LogoutMessageError("stale", "The message was issued too long ago.")
    if -age > settings.SAML_IDP_CLOCK_SKEW_SECONDS:
        raise LogoutMessageError("issued_in_future", "The message is dated in the future.")


def parse_incoming(
    upstream: UpstreamIdentityProvider,
    *,
    binding: str,
    parameters: dict[str, str],
    raw_query: str,
    slo_url: str,
    now: datetime.datetime | None = None,
) -> IncomingLogout:
    """A LogoutRequest or LogoutResponse from `upstream` (Issuer, Destination, time, signature
    checked); raises LogoutMessageError."""
    parameter = "SAMLRequest" if "SAMLRequest" in parameters else "SAMLResponse" if "SAMLResponse" in parameters else ""
    if not parameter:
        raise LogoutMessageError("malformed", "No SAMLRequest or SAMLResponse.")
    root = _decode(binding, parameters[parameter])
    expected = f"{{{PROTOCOL_NS}}}{'LogoutRequest' if parameter == 'SAMLRequest' else 'LogoutResponse'}"
    if root.tag != expected:
        raise LogoutMessageError("wrong_message", f"Expected {expected.split('}')[1]}.")
    issuer = root.find(f"{{{ASSERTION_NS}}}Issuer")
    if issuer is None or (issuer.text or "").strip() != upstream.entity_id:
        raise LogoutMessageError("wrong_issuer", "The message does not come from this IdP.")
    destination = root.get("Destination") or ""
    if destination and destination != slo_url:
        raise LogoutMessageError("wrong_destination", f"The message is addressed to {destination}.")
    _check_time(root, now or timezone.now())
    signed = _verify_signature(
        root,
        binding=binding,
        raw_query=raw_query,
        certificates=upstream_signing_certificates(upstream),
        parameter=parameter,
    )
    if signed and not destination:
        raise LogoutMessageError("missing_destination", "A signed message must carry its Destination.")
    relay_state = parameters.get("RelayState", "")[: settings.SAML_IDP_MAX_RELAY_STATE_BYTES]
    if parameter == "SAMLResponse":
        status = root.find(f"{{{PROTOCOL_NS}}}Status/{{{PROTOCOL_NS}}}StatusCode")
        return IncomingLogout(
            kind="response",
            message_id=root.get("ID") or "",
            signed=signed,
            relay_state=relay_state,
            in_response_to=root.get("InResponseTo") or "",
            status=status.get("Value", "") if status is not None else "",
        )
    name_id = root.find(f"{{{ASSERTION_NS}}}NameID")
    if name_id is None:
        raise LogoutMessageError("no_name_id", "The LogoutRequest names nobody (no NameID).")
    return IncomingLogout(
        kind="request",
        message_id=root.get("ID") or "",
        signed=signed,
        relay_state=relay_state,
        name_id=(name_id.text or "").strip(),
        name_id_format=name_id.get("Format", ""),
        session_indexes=tuple(
            (element.text or "").strip() for element in root.findall(f"{{{PROTOCOL_NS}}}SessionIndex")
        ),
    )


def session_mismatch(subject: UpstreamSubject | None, request: IncomingLogout) -> str:
    """Why the upstream's LogoutRequest does not end this portal session ("" when it does): the rule
    the portal applies as an IdP (apps.saml_idp.services.slo_session_mismatch). The NameID must be
    the one the upstream gave this session; with SessionIndexes, this session's must be among them;
    without, only a signed request speaks for every session of that NameID (SAML core 3.7.1)."""
    if subject is None:
        return "not_signed_in"
    if request.name_id != subject.name_id:
        return "name_id_mismatch"
    if request.session_indexes:
        return "" if subject.session_index in request.session_indexes else "session_index_mismatch"
    return "" if request.signed else "session_index_missing"
