"""SAML Responses, built from a connector, a subject and explicit arguments (no HTTP request).

Built with lxml and signed in place (apps.saml_idp.signing): pysaml2's object model alone takes longer than
the signed response does here (see bench/saml_sso.py). Text is set through lxml, never pasted
into markup, so values with `<`, `&`, quotes or comment markers reach the SP exactly as they are.
"""

import datetime
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from lxml import etree

from apps.connectors.models import Connector
from apps.saml_idp.attributes import Subject
from apps.saml_idp.constants import (
    AC_PASSWORD_PROTECTED_TRANSPORT,
    ASSERTION_NS,
    CM_BEARER,
    NAMEID_FORMAT_ENTITY,
    PROTOCOL_NS,
    STATUS_SUCCESS,
)
from apps.saml_idp.encryption import wrap_and_encrypt
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.signing import sign_element

_P = f"{{{PROTOCOL_NS}}}"
_A = f"{{{ASSERTION_NS}}}"
_P_NSMAP = {"samlp": PROTOCOL_NS}
# Each saml: element that may travel alone (an Assertion that gets encrypted) declares the
# namespace itself, so that it stays well-formed outside the Response.
_A_NSMAP = {"saml": ASSERTION_NS}


@dataclass(frozen=True)
class Session:
    """The portal sign-in an assertion speaks for."""

    index: str
    authn_instant: datetime.datetime
    authn_context: str = AC_PASSWORD_PROTECTED_TRANSPORT


def new_id() -> str:
    # An xs:ID must not start with a digit.
    return "_" + secrets.token_hex(20)


def instant(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _issuer(parent: etree._Element, entity_id: str) -> None:
    issuer = etree.SubElement(parent, f"{_A}Issuer", nsmap=_A_NSMAP, Format=NAMEID_FORMAT_ENTITY)
    issuer.text = entity_id


def _response_root(connector: Connector, *, acs_url: str, in_response_to: str | None, now: str) -> etree._Element:
    response = etree.Element(
        f"{_P}Response", nsmap=_P_NSMAP, ID=new_id(), Version="2.0", IssueInstant=now, Destination=acs_url
    )
    if in_response_to:
        response.set("InResponseTo", in_response_to)
    _issuer(response, connector.idp_entity_id)
    return response


def _status(parent: etree._Element, status: str, sub_status: str | None = None, message: str = "") -> None:
    element = etree.SubElement(parent, f"{_P}Status")
    code = etree.SubElement(element, f"{_P}StatusCode", Value=status)
    if sub_status:
        etree.SubElement(code, f"{_P}StatusCode", Value=sub_status)
    if message:
        etree.SubElement(element, f"{_P}StatusMessage").text = message


def _assertion(
    connector: Connector,
    subject: Subject,
    session: Session,
    *,
    acs_url: str,
    in_response_to: str | None,
    now: datetime.datetime,
) -> etree._Element:
    sso = connector.sso
    issue_instant = instant(now)
    not_before = instant(now - datetime.timedelta(seconds=settings.SAML_IDP_CLOCK_SKEW_SECONDS))
    not_on_or_after = instant(now + datetime.timedelta(seconds=sso.assertion_lifetime_seconds))

    assertion = etree.Element(f"{_A}Assertion", nsmap=_A_NSMAP, ID=new_id(), Version="2.0", IssueInstant=issue_instant)
    etree.SubElement(assertion, f"{_A}Issuer", Format=NAMEID_FORMAT_ENTITY).text = connector.idp_entity_id

    subject_element = etree.SubElement(assertion, f"{_A}Subject")
    name_id = etree.SubElement(subject_element, f"{_A}NameID", Format=subject.name_id_format)
    name_id.set("SPNameQualifier", sso.sp_entity_id)
    name_id.text = subject.name_id
    confirmation = etree.SubElement(subject_element, f"{_A}SubjectConfirmation", Method=CM_BEARER)
    data = etree.SubElement(
        confirmation, f"{_A}SubjectConfirmationData", NotOnOrAfter=not_on_or_after, Recipient=acs_url
    )
    if in_response_to:
        data.set("InResponseTo", in_response_to)

    conditions = etree.SubElement(assertion, f"{_A}Conditions", NotBefore=not_before, NotOnOrAfter=not_on_or_after)
    restriction = etree.SubElement(conditions, f"{_A}AudienceRestriction")
    etree.SubElement(restriction, f"{_A}Audience").text = sso.sp_entity_id

    session_end = session.authn_instant + datetime.timedelta(seconds=sso.session_lifetime_seconds)
    statement = etree.SubElement(
        assertion,
        f"{_A}AuthnStatement",
        AuthnInstant=instant(session.authn_instant),
        SessionIndex=session.index,
        SessionNotOnOrAfter=instant(session_end),
    )
    context = etree.SubElement(statement, f"{_A}AuthnContext")
    etree.SubElement(context, f"{_A}AuthnContextClassRef").text = session.authn_context

    if subject.attributes:
        attribute_statement = etree.SubElement(assertion, f"{_A}AttributeStatement")
        for attribute in subject.attributes:
            element = etree.SubElement(attribute_statement, f"{_A}Attribute", Name=attribute.name)
            if attribute.name_format:
                element.set("NameFormat", attribute.name_format)
            for value in attribute.values:
                etree.SubElement(element, f"{_A}AttributeValue").text = value
    return assertion


def build_authn_response(
    connector: Connector,
    subject: Subject,
    key: LoadedKey,
    session: Session,
    *,
    acs_url: str,
    in_response_to: str | None,
    now: datetime.datetime | None = None,
) -> bytes:
    """A successful Response, signed (and the assertion encrypted) as the connector says."""
    sso = connector.sso
    now = now or timezone.now()
    response = _response_root(connector, acs_url=acs_url, in_response_to=in_response_to, now=instant(now))
    _status(response, STATUS_SUCCESS)
    assertion = _assertion(connector, subject, session, acs_url=acs_url, in_response_to=in_response_to, now=now)
    response.append(assertion)
    algorithm, digest = sso.signature_algorithm, sso.digest_algorithm
    encryption = {"data_algorithm": sso.encryption_algorithm, "key_transport": sso.key_transport}
    if sso.encrypt_name_id and sso.sp_encryption_cert:
        # Inside the assertion, before it is signed: the signature covers the EncryptedID.
        name_id = assertion.find(f"{_A}Subject/{_A}NameID")
        wrap_and_encrypt(name_id, "EncryptedID", sso.sp_encryption_cert, **encryption)
    # Assertion first: the Response signature then covers the signed (or encrypted) assertion.
    if sso.sign_assertion:
        sign_element(assertion, key.private_key, key.certificate_b64, algorithm, digest)
    if sso.encrypt_assertions and sso.sp_encryption_cert:
        wrap_and_encrypt(assertion, "EncryptedAssertion", sso.sp_encryption_cert, **encryption)
    if sso.sign_response:
        sign_element(response, key.private_key, key.certificate_b64, algorithm, digest)
    return etree.tostring(response, xml_declaration=True, encoding="UTF-8")


def build_error_response(
    connector: Connector,
    key: LoadedKey,
    *,
    acs_url: str,
    in_response_to: str | None,
    status: str,
    sub_status: str | None = None,
    message: str = "",
    now: datetime.datetime | None = None,
) -> bytes:
    """A Response carrying only a non-success status, always signed (it has no assertion to sign)."""
    now = now or timezone.now()
    response = _response_root(connector, acs_url=acs_url, in_response_to=in_response_to, now=instant(now))
    _status(response, status, sub_status, message)
    sign_element(
        response,
        key.private_key,
        key.certificate_b64,
        connector.sso.signature_algorithm,
        connector.sso.digest_algorithm,
    )
    return etree.tostring(response, xml_declaration=True, encoding="UTF-8")
