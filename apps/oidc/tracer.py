"""The OIDC tracer: while an admin has it on, each authorization request to a connector is kept
(its parameters and what the portal decided), and the console previews the claims a chosen user
would get. Records name people, so they are few per connector and expire like the SAML tracer's."""

import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.middleware import client_ip
from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.connectors.models import Connector
from apps.connectors.trace_window import oidc_trace_window_set
from apps.directory.models import User
from apps.oidc import claims as claim_rules
from apps.oidc import selectors
from apps.oidc.models import OidcTraceRecord

# Never stored, even cut short: they are or lead to credentials.
_SECRET_PARAMETERS = {"client_secret", "code_verifier", "id_token_hint", "request", "password"}
_MAX_VALUE = 300


def capturing(connector: Connector, *, now: datetime.datetime | None = None) -> bool:
    until = connector.oidc.trace_until
    return until is not None and until > (now or timezone.now())


def trace_start(*, actor: Actor, connector: Connector, minutes: int) -> datetime.datetime:
    limit = settings.SAML_IDP_TRACE_MAX_MINUTES
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= limit:
        raise ApplicationError(f"Capture for 1 to {limit} minutes.", code="trace_minutes")
    if not connector.has_oidc:
        raise ApplicationError(f"{connector.name} has no OpenID Connect sign-in to trace.", code="no_oidc")
    until = timezone.now() + datetime.timedelta(minutes=minutes)
    with transaction.atomic():
        oidc_trace_window_set(connector, until)
        audit_record(actor=actor, action="oidc.trace.start", target=connector, after={"until": until.isoformat()})
    return until


def trace_stop(*, actor: Actor, connector: Connector) -> None:
    with transaction.atomic():
        oidc_trace_window_set(connector, None)
        audit_record(actor=actor, action="oidc.trace.stop", target=connector)


def trace_clear(*, actor: Actor, connector: Connector) -> int:
    with transaction.atomic():
        deleted, _ = OidcTraceRecord.objects.filter(connector=connector).delete()
        audit_record(actor=actor, action="oidc.trace.clear", target=connector, after={"deleted": deleted})
    return deleted


def trace_expire(*, now: datetime.datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - datetime.timedelta(seconds=settings.SAML_IDP_TRACE_RETENTION_SECONDS)
    deleted, _ = OidcTraceRecord.objects.filter(created__lt=cutoff).delete()
    return deleted


def _parameters(request: HttpRequest) -> dict[str, str]:
    return {
        name[:64]: ("(not stored)" if name in _SECRET_PARAMETERS else value[:_MAX_VALUE])
        for name, value in list(request.GET.items())[:40]
    }


def record(
    connector: Connector, request: HttpRequest, *, outcome: str, error: str = "", description: str = ""
) -> OidcTraceRecord | None:
    """Keep one authorization request when the connector's capture is on (no query otherwise)."""
    if not capturing(connector):
        return None
    user = request.user if request.user.is_authenticated else None
    trace = OidcTraceRecord.objects.create(
        connector=connector,
        outcome=outcome,
        client_ip=client_ip(request),
        user=user,
        user_label=user.username if user else "",
        parameters=_parameters(request),
        error=error[:64],
        error_description=description[:1000],
    )
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.SAML_IDP_TRACE_RETENTION_SECONDS)
    keep = list(
        OidcTraceRecord.objects.filter(connector=connector).values_list("id", flat=True)[: settings.OIDC_TRACE_KEEP]
    )
    OidcTraceRecord.objects.filter(connector=connector).filter(Q(created__lt=cutoff) | ~Q(id__in=keep)).delete()
    return trace


def trace_records(connector: Connector) -> list[OidcTraceRecord]:
    return selectors.trace_records(connector, limit=settings.OIDC_TRACE_KEEP)


def claims_preview(connector: Connector, user: User, scopes: list[str] | None = None) -> dict[str, Any]:
    """What `user` would get from `connector`: whether they may sign in, the ID token's and the
    userinfo endpoint's claims (for the scopes given, else every scope the connector allows)."""
    granted = scopes or list(connector.oidc.allowed_scopes)
    mappings = selectors.claim_mappings(connector)
    properties = selectors.claim_properties_of(user, mappings)
    user_claims = claim_rules.user_claims(properties, mappings, granted, connector.oidc.sub_source)
    return {
        "refusal": selectors.may_sign_in(connector, user),
        "scopes": granted,
        "claims": user_claims,
        "withheld": [target for _, target in mappings if claim_rules.scope_of(target) not in granted],
    }
