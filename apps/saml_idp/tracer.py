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
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from lxml import etree

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.connectors.models import Connector
from apps.connectors.trace_window import trace_window_set, trace_windows_close_past
from apps.saml_idp.constants import (
    BINDING_POST,
    BINDING_REDIRECT,
    SIGNATURE_ALGORITHMS,
)
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.models import SamlTraceRecord, TraceKind, TraceOutcome
from apps.saml_idp.requests import (
    IncomingMessage,
)
from apps.saml_idp.trace_checks import BAD, LEVEL_ORDER, WARN, check_request, problem
from apps.saml_idp.trace_describe import describe_response
from apps.saml_idp.trace_xml import algorithm_label, stored_xml

# --- Capture on and off -------------------------------------------------------------------------


_MAX_RELAY_STATE_STORED = 2048


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
        trace_window_set(connector, until)
        audit_record(
            actor=actor,
            action="saml.trace.start",
            target=connector,
            after={"until": until.isoformat(), "minutes": minutes},
        )
    return until


def trace_stop(*, actor: Actor, connector: Connector) -> None:
    """Stop recording now (the messages already recorded stay until they expire or are cleared)."""
    with transaction.atomic():
        trace_window_set(connector, None)
        audit_record(actor=actor, action="saml.trace.stop", target=connector)


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
    trace_windows_close_past(now)
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
    fields["problems"] = sorted(fields.get("problems", []), key=lambda problem: LEVEL_ORDER[problem["level"]])
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
        checked.problems.insert(0, problem(BAD, "Replayed request", error.message))
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
        root, summary, problems = None, {}, [problem(WARN, "The sent response could not be shown", str(error))]
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
        problems=[problem(BAD, title, error.message)],
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
            problems=[problem(WARN, "The sent LogoutResponse could not be shown", str(error))],
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
