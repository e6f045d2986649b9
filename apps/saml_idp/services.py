"""What the IdP does for a sign-in, a sign-out and a metadata fetch; each outcome is audited.

Views hand in the connector, the user and what the SP asked for (already parsed by
`requests.py`); these functions decide, build through `responses.py`, and record.
"""

import datetime
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone

from apps.audit.services import audit_record
from apps.connectors.models import Connector
from apps.directory.models import User, UserStatus
from apps.saml_idp import bindings
from apps.saml_idp.attributes import subject_for
from apps.saml_idp.constants import (
    BINDING_POST,
    BINDING_REDIRECT,
    STATUS_REQUEST_DENIED,
    STATUS_RESPONDER,
    STATUS_SUCCESS,
)
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey, loaded_key_for
from apps.saml_idp.models import MetadataFetch, SigningKey
from apps.saml_idp.requests import AuthnRequestInfo, LogoutRequestInfo, LogoutResponseInfo, check_relay_state
from apps.saml_idp.responses import Session, build_authn_response, build_error_response
from apps.saml_idp.selectors import SignInFacts, sign_in_facts, user_assigned

FETCH_DEDUP_WINDOW = datetime.timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedResponse:
    """A Response ready for the HTTP-POST binding."""

    acs_url: str
    saml_response: str
    relay_state: str

    def form_fields(self) -> dict[str, str]:
        return {"SAMLResponse": self.saml_response, "RelayState": self.relay_state}


def connector_key(connector: Connector) -> LoadedKey:
    return loaded_key_for(connector)


def _actor(user: Any) -> User | None:
    return user if getattr(user, "is_authenticated", False) else None


def sso_record_refusal(
    *, connector: Connector | None, user: Any, error: SamlRequestError, details: dict | None = None, label: str = ""
) -> None:
    """Audit a refused sign-in (every SSO, success or failure, leaves a row)."""
    audit_record(
        actor=_actor(user),
        action="saml.sso.refused",
        target=connector,
        target_label=label,
        after={"reason": error.reason, "detail": error.message, **(details or {})},
    )


def check_sign_in_allowed(connector: Connector, user: User, facts: SignInFacts | None = None) -> None:
    """The connector is on, the user active and assigned to it; raises SamlRequestError.

    `facts`, when the caller has read them already (`selectors.sign_in_facts`), answer the assignment.
    """
    if not connector.enabled:
        raise SamlRequestError(
            "connector_disabled",
            f"{connector.name} is switched off in the portal; ask your administrator.",
            status=STATUS_RESPONDER,
            sub_status=STATUS_REQUEST_DENIED,
            http_status=403,
        )
    if user.status != UserStatus.ACTIVE:
        raise SamlRequestError(
            "user_suspended",
            "Your account is not active, so it cannot sign in to apps.",
            status=STATUS_RESPONDER,
            sub_status=STATUS_REQUEST_DENIED,
            http_status=403,
        )
    if not (facts.assigned if facts is not None else user_assigned(connector.pk, user.pk)):
        raise SamlRequestError(
            "not_assigned",
            f"You are not assigned to {connector.name}; ask your administrator for access.",
            status=STATUS_RESPONDER,
            sub_status=STATUS_REQUEST_DENIED,
            http_status=403,
        )


def default_acs_url(connector: Connector) -> str:
    acs = connector.sso.default_acs
    if not acs:
        raise SamlRequestError(
            "acs_not_registered", f"{connector.name} has no Assertion Consumer Service URL configured.", http_status=409
        )
    return acs["url"]


def needs_sign_in(connector: Connector, auth_time: datetime.datetime | None, *, now: datetime.datetime) -> bool:
    """Whether the portal sign-in is too old for this connector's session lifetime."""
    if auth_time is None:
        return False
    return (now - auth_time).total_seconds() > connector.sso.session_lifetime_seconds


def sso_issue(
    *,
    connector: Connector,
    user: User,
    session: Session,
    request: AuthnRequestInfo | None,
    relay_state: str = "",
    key: LoadedKey | None = None,
    now: datetime.datetime | None = None,
) -> IssuedResponse:
    """A signed Response for `user`: to the requested ACS (SP-initiated), or the default one
    without InResponseTo (IdP-initiated, `request` None). Refusals raise SamlRequestError, audited."""
    facts = sign_in_facts(connector.pk, user.pk)
    try:
        check_sign_in_allowed(connector, user, facts)
        acs_url = request.acs_url if request else default_acs_url(connector)
    except SamlRequestError as error:
        sso_record_refusal(connector=connector, user=user, error=error, details=_request_details(request))
        raise
    key = key or connector_key(connector)
    subject = subject_for(connector, user, facts)
    xml = build_authn_response(
        connector,
        subject,
        key,
        session,
        acs_url=acs_url,
        in_response_to=request.id if request else None,
        now=now,
    )
    relay_state = request.relay_state if request else relay_state
    audit_record(
        actor=user,
        action="saml.sso.success",
        target=connector,
        after={
            **_request_details(request),
            "flow": "sp" if request else "idp",
            "acs_url": acs_url,
            "nameid_format": connector.sso.nameid_format,
            "attributes": [attribute.name for attribute in subject.attributes],
            "signed": {"response": connector.sso.sign_response, "assertion": connector.sso.sign_assertion},
            **_encryption_details(connector),
            "key": str(key.id),
        },
    )
    return IssuedResponse(acs_url=acs_url, saml_response=bindings.encode_post_message(xml), relay_state=relay_state)


def _encryption_details(connector: Connector) -> dict:
    sso = connector.sso
    encrypted = sso.encrypt_assertions and bool(sso.sp_encryption_cert)
    details: dict[str, Any] = {"encrypted": encrypted, "signature_algorithm": sso.signature_algorithm}
    if encrypted or sso.encrypt_name_id:
        details["encryption"] = {
            "algorithm": sso.encryption_algorithm,
            "key_transport": sso.key_transport,
            "name_id": sso.encrypt_name_id,
        }
    return details


def _request_details(request: AuthnRequestInfo | None) -> dict:
    if request is None:
        return {}
    return {"request_id": request.id, "sp_entity_id": request.issuer, "binding": request.binding}


def sso_error_response(
    *, connector: Connector, user: Any, request: AuthnRequestInfo, error: SamlRequestError, audited: bool = False
) -> IssuedResponse:
    """Answer a verified request with a SAML error status (IsPassive, or a refusal of the user)."""
    if not audited:
        sso_record_refusal(connector=connector, user=user, error=error, details=_request_details(request))
    xml = build_error_response(
        connector,
        connector_key(connector),
        acs_url=request.acs_url,
        in_response_to=request.id,
        status=error.status,
        sub_status=error.sub_status,
        message=error.message,
    )
    return IssuedResponse(
        acs_url=request.acs_url, saml_response=bindings.encode_post_message(xml), relay_state=request.relay_state
    )


def launch_relay_state(connector: Connector, requested: str | None) -> str:
    """The RelayState of an IdP-initiated sign-in: a relative path, or one of the connector's URLs."""
    if requested is None or requested == "":
        return connector.sso.default_relay_state
    check_relay_state(requested)
    if any(ord(char) < 0x21 for char in requested) or "\\" in requested:
        raise SamlRequestError("relay_state_offsite", "RelayState contains spaces, control characters or backslashes.")
    parts = urlsplit(requested)
    if not parts.scheme and not parts.netloc and requested.startswith("/") and not requested.startswith("//"):
        return requested
    for allowed in connector.sso.relay_state_urls:
        if requested == allowed:
            return requested
        allowed_parts = urlsplit(allowed)
        # An allowed URL ending in "/" admits every path below it on the same origin.
        if (
            allowed.endswith("/")
            and requested.startswith(allowed)
            and (parts.scheme, parts.netloc) == (allowed_parts.scheme, allowed_parts.netloc)
        ):
            return requested
    raise SamlRequestError(
        "relay_state_offsite",
        "RelayState must be a relative path or one of the URLs allowed for this app; refusing to send you elsewhere.",
    )


# --- Single logout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogoutAnswer:
    """Whether the portal session ends, and where the LogoutResponse goes: a Redirect URL, a POST
    form, or nowhere (no SLO URL)."""

    end_session: bool
    binding: str = ""
    url: str = ""
    fields: dict | None = None
    xml: bytes = b""  # the LogoutResponse as built (for the tracer)


def slo_record_refusal(*, connector: Connector | None, user: Any, error: SamlRequestError, label: str = "") -> None:
    audit_record(
        actor=_actor(user),
        action="saml.slo.refused",
        target=connector,
        target_label=label,
        after={"reason": error.reason, "detail": error.message},
    )


def slo_record_response(*, connector: Connector, user: Any, response: LogoutResponseInfo) -> bool:
    """The app answered the portal's sign-out LogoutRequest; True when it signed the person out."""
    succeeded = response.status == STATUS_SUCCESS
    audit_record(
        actor=_actor(user),
        action="saml.slo.response",
        target=connector,
        after={
            "response_id": response.id,
            "in_response_to": response.in_response_to,
            "status": response.status,
            "signed": response.signed,
            "succeeded": succeeded,
        },
    )
    return succeeded


def slo_session_mismatch(*, connector: Connector, user: Any, request: LogoutRequestInfo, session_index: str) -> str:
    """Why the LogoutRequest does not end this portal session ("" when it does).

    A LogoutRequest comes through the person's browser, and any page they visit can send an
    unsigned one (a GET is enough). So it ends the session only when it names this user and this
    session: the SessionIndex (apps.saml_idp.views._session) is known only to the apps that were
    sent an assertion of the session. A signed request without one speaks for every session of
    the user (SAML core 3.7.1); a transient NameID names nobody, so its SessionIndex must match.
    """
    if not getattr(user, "is_authenticated", False):
        return "not_signed_in"
    transient = connector.sso.nameid_format == "transient"
    if not transient and not nameid_matches(connector, user, request.name_id):
        return "name_id_mismatch"
    if request.session_indexes:
        return "" if session_index in request.session_indexes else "session_index_mismatch"
    return "" if request.signed and not transient else "session_index_missing"


def slo_complete(*, connector: Connector, user: Any, request: LogoutRequestInfo, session_index: str) -> LogoutAnswer:
    """Decide whether the session ends, record it, and build the LogoutResponse for the SP (the view
    ends the session). The app hears Success either way: the session it names is gone from here."""
    mismatch = slo_session_mismatch(connector=connector, user=user, request=request, session_index=session_index)
    audit_record(
        actor=_actor(user),
        action="saml.slo",
        target=connector,
        after={
            "request_id": request.id,
            "sp_entity_id": request.issuer,
            "binding": request.binding,
            "signed": request.signed,
            "name_id_matches": nameid_matches(connector, user, request.name_id),
            "session_ended": not mismatch,
            **({"kept_because": mismatch} if mismatch else {}),
        },
    )
    sso = connector.sso
    if not sso.slo_url:
        return LogoutAnswer(end_session=not mismatch)
    # Imported here: pysaml2 (behind server.py) is only loaded by the paths that use it.
    from apps.saml_idp.server import logout_response_xml

    key = connector_key(connector)
    binding = sso.slo_binding or BINDING_REDIRECT
    xml = logout_response_xml(
        connector,
        key,
        in_response_to=request.id,
        destination=sso.slo_url,
        sign=binding == BINDING_POST,
        status=STATUS_SUCCESS,
    )
    if binding == BINDING_POST:
        return LogoutAnswer(
            end_session=not mismatch,
            binding=binding,
            url=sso.slo_url,
            fields={"SAMLResponse": bindings.encode_post_message(xml), "RelayState": request.relay_state},
            xml=xml,
        )
    url = bindings.redirect_url(
        sso.slo_url,
        parameter="SAMLResponse",
        xml=xml,
        relay_state=request.relay_state,
        key=key,
        algorithm=sso.signature_algorithm,
    )
    return LogoutAnswer(end_session=not mismatch, binding=BINDING_REDIRECT, url=url, xml=xml)


def nameid_matches(connector: Connector, user: Any, name_id: str) -> bool:
    if not getattr(user, "is_authenticated", False) or connector.sso.nameid_format == "transient":
        return False
    from apps.saml_idp.attributes import name_id_value

    return name_id_value(connector, user) == name_id


# --- Metadata -----------------------------------------------------------------------------------


def metadata_fetch_record(
    *, connector: Connector, ip: str | None, user_agent: str, keys: list[SigningKey]
) -> MetadataFetch:
    """Remember who fetched the connector's metadata and which keys it saw then.

    The endpoint is public: a client polling in a loop gets one row per minute, not one per request.
    """
    key_ids = [str(key.pk) for key in keys]
    recent = (
        MetadataFetch.objects.filter(connector=connector, ip=ip, created__gte=timezone.now() - FETCH_DEDUP_WINDOW)
        .order_by("-created", "-id")
        .first()
    )
    if recent is not None and recent.key_ids == key_ids:
        return recent
    return MetadataFetch.objects.create(connector=connector, ip=ip, user_agent=user_agent[:255], key_ids=key_ids)


def sha1_warning(connector: Connector) -> str:
    """The console's warning for a connector that signs with SHA-1 (allowed only by an override)."""
    if connector.has_sso and connector.sso.signature_algorithm == "rsa-sha1":
        return (
            "This app is set to receive RSA-SHA1 signatures, which can be forged. Switch it to RSA-SHA256 as soon "
            "as the app supports it."
        )
    return ""
