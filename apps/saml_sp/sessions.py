"""Portal sessions opened through an upstream IdP, and single logout with that upstream.

At sign-in the session keeps who the upstream said the person is (NameID) and in which of its
sessions (SessionIndex). Signing out of the portal then ends with a LogoutRequest to the upstream
(registered with apps.portal.sign_out_steps); the upstream's LogoutRequest ends the portal session
only when it names this session, by the rule apps.saml_sp.logout.session_mismatch applies.
"""

import time
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from apps.audit.services import audit_record
from apps.portal.services import METHOD_KEY
from apps.portal.sign_out_steps import SignOutStep
from apps.saml_idp.constants import STATUS_SUCCESS
from apps.saml_idp.replay import remember_once
from apps.saml_sp import logout
from apps.saml_sp.conf import sp_urls
from apps.saml_sp.keys import ensure_active_sp_key, loaded_sp_key
from apps.saml_sp.models import UpstreamIdentityProvider
from apps.saml_sp.selectors import upstream_by_slug

SUBJECT_KEY = "saml_sp_subject"
PENDING_LOGOUT_KEY = "saml_sp_logout_request"
# A LogoutRequest from the upstream is acted on once; its ID is kept this long.
LOGOUT_REQUEST_REPLAY_SECONDS = 3600


def remember_subject(request: HttpRequest, upstream: UpstreamIdentityProvider, session_info: dict[str, Any]) -> None:
    """Keep the upstream's NameID and SessionIndex in the session the assertion opened (or will
    open, once a second factor is passed)."""
    name_id = session_info.get("name_id")
    subject = logout.UpstreamSubject(
        name_id=str(getattr(name_id, "text", name_id) or "").strip(),
        name_id_format=getattr(name_id, "format", None) or "",
        name_qualifier=getattr(name_id, "name_qualifier", None) or "",
        sp_name_qualifier=getattr(name_id, "sp_name_qualifier", None) or "",
        session_index=str(session_info.get("session_index") or ""),
    )
    request.session[SUBJECT_KEY] = {"upstream": upstream.slug, **asdict(subject)}


def session_subject(request: HttpRequest, upstream: UpstreamIdentityProvider) -> logout.UpstreamSubject | None:
    """The upstream subject of this signed-in session, if it was signed in through `upstream`."""
    if not request.user.is_authenticated:
        return None
    method = str(request.session.get(METHOD_KEY, "")).split("+", 1)[0]
    data = dict(request.session.get(SUBJECT_KEY) or {})
    if method != f"saml:{upstream.slug}" or data.pop("upstream", None) != upstream.slug:
        return None
    try:
        return logout.UpstreamSubject(**data)
    except TypeError:
        return None


def _audit(upstream: UpstreamIdentityProvider, request: HttpRequest, action: str, after: dict) -> None:
    user = request.user if request.user.is_authenticated else None
    with transaction.atomic():
        audit_record(
            actor=user,
            actor_label=f"saml_sp:{upstream.slug}",
            action=action,
            target=upstream,
            after={"upstream": upstream.slug, **after},
        )


def upstream_sign_out_step(request: HttpRequest) -> SignOutStep | None:
    """The LogoutRequest to the upstream this session signed in through (apps.portal.sign_out_steps):
    None when it did not, the upstream does not want single logout, or lists no SLO endpoint."""
    data = request.session.get(SUBJECT_KEY) or {}
    upstream = upstream_by_slug(str(data.get("upstream", ""))) if data else None
    if upstream is None or not upstream.single_logout:
        return None
    subject = session_subject(request, upstream)
    if subject is None:
        return None
    key = loaded_sp_key(ensure_active_sp_key())
    message = logout.logout_request(upstream, subject, sp_entity_id=sp_urls(upstream)["entity_id"], key=key)
    if message is None:
        return None
    _audit(
        upstream,
        request,
        "saml_sp.slo.request",
        {"request_id": message.message_id, "binding": message.binding, "session_index": subject.session_index},
    )
    pending = {"upstream": upstream.slug, "id": message.message_id, "issued": int(time.time())}
    return SignOutStep(
        name=upstream.name, url=message.url, fields=message.fields, session_data={PENDING_LOGOUT_KEY: pending}
    )


def logout_response_received(
    request: HttpRequest, upstream: UpstreamIdentityProvider, incoming: logout.IncomingLogout
) -> bool:
    """The upstream's answer to our LogoutRequest: True when it confirms the sign-out we asked for.
    The portal session ended before we asked; this only tells the person whether the IdP's did."""
    pending = request.session.pop(PENDING_LOGOUT_KEY, None) or {}
    ours = pending.get("upstream") == upstream.slug and pending.get("id") == incoming.in_response_to
    confirmed = ours and incoming.status == STATUS_SUCCESS
    _audit(
        upstream,
        request,
        "saml_sp.slo.response",
        {
            "in_response_to": incoming.in_response_to,
            "status": incoming.status,
            "signed": incoming.signed,
            "matches_request": ours,
            "confirmed": confirmed,
        },
    )
    return confirmed


@dataclass(frozen=True)
class LogoutDecision:
    end_session: bool
    answer: logout.OutgoingMessage | None


def upstream_logout_requested(
    request: HttpRequest, upstream: UpstreamIdentityProvider, incoming: logout.IncomingLogout
) -> LogoutDecision:
    """Decide on the upstream's LogoutRequest and build our LogoutResponse (the view ends the
    session). The upstream hears Success either way: the session it names is not open here."""
    subject = session_subject(request, upstream)
    mismatch = logout.session_mismatch(subject, incoming)
    if not mismatch and not remember_once(
        purpose="saml_sp.logout_request",
        scope=upstream.entity_id,
        message_id=incoming.message_id,
        ttl_seconds=LOGOUT_REQUEST_REPLAY_SECONDS,
    ):
        mismatch = "replayed"
    _audit(
        upstream,
        request,
        "saml_sp.slo",
        {
            "request_id": incoming.message_id,
            "signed": incoming.signed,
            "session_ended": not mismatch,
            **({"kept_because": mismatch} if mismatch else {}),
        },
    )
    key = loaded_sp_key(ensure_active_sp_key())
    answer = logout.logout_response(
        upstream,
        in_response_to=incoming.message_id,
        sp_entity_id=sp_urls(upstream)["entity_id"],
        key=key,
        relay_state=incoming.relay_state,
    )
    return LogoutDecision(end_session=not mismatch, answer=answer)
