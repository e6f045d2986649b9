"""Single logout as the IdP: the SessionIndex of a portal session, the LogoutRequests sent to the
apps a person signed in to during the session that is ending (front-channel), and ending sessions
an app names over the back-channel.

Requests are built with lxml and signed with the connector's IdP key through this app's signing
and bindings modules (the same code that signs its Responses). HTTP-Redirect requests carry the
signature in the query string; HTTP-POST requests carry an enveloped XML signature. No HTTP
request object is involved: the caller hands in the user, the session's facts and the clock.

The portal owns sign-in sessions; it registers how to end them (`register_session_ender`, from its
AppConfig.ready) so that this app never imports it.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.utils import timezone
from django.utils.crypto import salted_hmac
from lxml import etree

from apps.audit.models import AuditEvent
from apps.connectors.models import Connector
from apps.directory.models import User
from apps.saml_idp import bindings, services
from apps.saml_idp.attributes import name_id_value
from apps.saml_idp.constants import ASSERTION_NS, BINDING_POST, BINDING_REDIRECT, NAMEID_FORMATS, PROTOCOL_NS
from apps.saml_idp.responses import instant, new_id
from apps.saml_idp.signing import sign_element

# A LogoutRequest is good for this long after it is issued.
LOGOUT_REQUEST_LIFETIME = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class LogoutMessage:
    """One LogoutRequest, ready for the browser: a URL to load, or a form to post."""

    connector_name: str
    binding: str
    url: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


def session_index(session_key: str) -> str:
    """The SessionIndex of every AuthnStatement issued in this portal session, and the one its
    LogoutRequests carry. Derived from the session key (which changes at every sign-in), so nothing
    is stored per sign-in."""
    return "_" + salted_hmac("saml_idp.session_index", session_key or "").hexdigest()[:40]


SessionEnder = Callable[..., int]
_session_enders: list[SessionEnder] = []


def register_session_ender(ender: SessionEnder) -> None:
    """`ender(user=, actor_label=, matching=)` ends the user's sessions whose key `matching`
    accepts and returns how many it ended."""
    if ender not in _session_enders:
        _session_enders.append(ender)


def end_sessions(*, user: User, actor_label: str, matching: Callable[[str], bool]) -> int:
    """End the sign-in sessions of `user` that `matching` accepts (by session key)."""
    return sum(ender(user=user, actor_label=actor_label, matching=matching) for ender in _session_enders)


def apps_signed_in_during(user: User, since: datetime.datetime | None) -> list[Connector]:
    """Enabled SAML apps with an SLO URL that received an assertion for `user` since `since`.

    The IdP keeps no per-session list of apps; its audit trail records every Response it issued.
    """
    events = AuditEvent.objects.filter(actor=user, action="saml.sso.success", target_type="connectors.connector")
    if since is not None:
        events = events.filter(created__gte=since)
    connector_ids = set(events.values_list("target_id", flat=True))
    if not connector_ids:
        return []
    connectors = Connector.objects.select_related("sso").filter(pk__in=connector_ids, enabled=True)
    return [
        connector
        for connector in connectors.order_by("name")
        if connector.has_sso and connector.sso.slo_url and connector.sso.nameid_format != "transient"
    ]


def logout_request_element(
    *,
    issuer: str,
    destination: str,
    name_id: str,
    name_id_attributes: dict[str, str],
    session_index: str,
    now: datetime.datetime | None = None,
) -> etree._Element:
    """A SAML LogoutRequest, unsigned (the IdP's to an app, or delegated login's to an upstream IdP).
    `name_id_attributes`: Format, NameQualifier, SPNameQualifier (empty values are left out)."""
    now = now or timezone.now()
    p, a = f"{{{PROTOCOL_NS}}}", f"{{{ASSERTION_NS}}}"
    root = etree.Element(
        f"{p}LogoutRequest",
        nsmap={"samlp": PROTOCOL_NS, "saml": ASSERTION_NS},
        ID=new_id(),
        Version="2.0",
        IssueInstant=instant(now),
        Destination=destination,
        NotOnOrAfter=instant(now + LOGOUT_REQUEST_LIFETIME),
        Reason="urn:oasis:names:tc:SAML:2.0:logout:user",
    )
    etree.SubElement(root, f"{a}Issuer").text = issuer
    element = etree.SubElement(root, f"{a}NameID")
    for attribute, value in name_id_attributes.items():
        if value:
            element.set(attribute, value)
    element.text = name_id
    if session_index:
        etree.SubElement(root, f"{p}SessionIndex").text = session_index
    return root


def logout_request_xml(
    connector: Connector, user: User, *, session_key: str, now: datetime.datetime | None = None
) -> etree._Element:
    sso = connector.sso
    return logout_request_element(
        issuer=connector.idp_entity_id,
        destination=sso.slo_url,
        name_id=name_id_value(connector, user),
        name_id_attributes={"Format": NAMEID_FORMATS[sso.nameid_format], "SPNameQualifier": sso.sp_entity_id},
        session_index=session_index(session_key),
        now=now,
    )


def logout_message(connector: Connector, user: User, *, session_key: str) -> LogoutMessage:
    """The connector's LogoutRequest in its SLO binding, signed with its IdP key."""
    sso = connector.sso
    key = services.connector_key(connector)
    root = logout_request_xml(connector, user, session_key=session_key)
    if (sso.slo_binding or BINDING_REDIRECT) == BINDING_POST:
        sign_element(root, key.private_key, key.certificate_b64, sso.signature_algorithm, sso.digest_algorithm)
        xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return LogoutMessage(
            connector_name=connector.name,
            binding=BINDING_POST,
            url=sso.slo_url,
            fields={"SAMLRequest": bindings.encode_post_message(xml)},
        )
    xml = etree.tostring(root, encoding="UTF-8")
    url = bindings.redirect_url(
        sso.slo_url, parameter="SAMLRequest", xml=xml, key=key, algorithm=sso.signature_algorithm
    )
    return LogoutMessage(connector_name=connector.name, binding=BINDING_REDIRECT, url=url)


def logout_messages(user: User, *, session_key: str, since: datetime.datetime | None) -> list[LogoutMessage]:
    return [
        logout_message(connector, user, session_key=session_key) for connector in apps_signed_in_during(user, since)
    ]
