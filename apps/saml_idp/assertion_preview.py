"""The assertion a chosen user would get from a connector now, built by the same code as a real
sign-in, for the tracer page (nothing is signed, sent or stored)."""

import datetime
from dataclasses import dataclass

from django.utils import timezone

from apps.connectors.models import Connector
from apps.directory.models import User
from apps.saml_idp.attributes import subject_for
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.responses import Session, _assertion
from apps.saml_idp.selectors import sign_in_facts
from apps.saml_idp.services import check_sign_in_allowed, default_acs_url
from apps.saml_idp.trace_describe import describe_assertion
from apps.saml_idp.trace_xml import pretty_xml


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
