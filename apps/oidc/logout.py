"""Signing out with OpenID Connect, joined to the portal's single sign-out:

- a portal sign-out (launchpad, "sign out everywhere", a SAML back-channel logout) ends the OIDC
  sign-ins of that session, revoking their tokens, and names the apps' front-channel logout URLs
  (OpenID Connect Front-Channel Logout 1.0, with `iss` and `sid`) for the signed-out page to load;
- an app's RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) ends the portal session
  too, so the person's SAML apps and other OIDC apps are signed out the same way, then returns to
  the app's registered post-logout redirect URI.

The portal registers how to end its sessions (apps.saml_idp.logout.register_session_ender) and
calls `portal_signed_out` through apps.common.sign_out: this app never imports the portal.
"""

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import logout as django_logout
from django.http import HttpRequest
from oauthlib.common import add_params_to_uri

from apps.common.sign_out import FrontChannelLogout
from apps.connectors.models import Connector
from apps.directory.models import User
from apps.oidc import selectors, services
from apps.oidc.hints import verify_id_token_hint
from apps.oidc.models import OidcSession
from apps.oidc.session import session_id
from apps.saml_idp import logout as saml_logout
from apps.saml_idp.session import AUTH_TIME_KEY

MAX_LOGOUT_PARAMETER = 2048
# The parameters a confirmation page carries over to its POST.
KEPT = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


def front_channel_logouts(sessions: list[OidcSession], *, except_connector: Connector | None = None) -> list:
    """One front-channel logout per app that registered a URI, with `iss` and `sid`."""
    seen: set = set()
    messages = []
    for session in sessions:
        connector = session.connector
        uri = connector.oidc.frontchannel_logout_uri
        if not uri or connector.pk in seen or (except_connector and connector.pk == except_connector.pk):
            continue
        seen.add(connector.pk)
        url = add_params_to_uri(uri, [("iss", connector.idp_entity_id), ("sid", session.sid)])
        messages.append(FrontChannelLogout(connector_name=connector.name, url=url))
    return messages


def end_signed_in_sessions(user: User, *, session_key: str | None, reason: str) -> list[OidcSession]:
    """End the OIDC sign-ins of one portal session (all of the user's when `session_key` is None)."""
    sid = session_id(session_key) if session_key is not None else None
    sessions = list(selectors.live_sessions(user, sid=sid))
    services.sessions_end(sessions, reason=reason)
    for connector in {session.connector for session in sessions}:
        count = sum(1 for session in sessions if session.connector_id == connector.pk)
        services.audit("oidc.logout", connector=connector, user=user, reason=reason, sessions=count)
    return sessions


def portal_signed_out(
    *, user: Any, session_key: str | None, since: datetime.datetime | None, actor_label: str = ""
) -> list[FrontChannelLogout]:
    """apps.common.sign_out participant: the portal session ended (every session when no key)."""
    if not isinstance(user, User):
        return []
    sessions = end_signed_in_sessions(user, session_key=session_key, reason=actor_label or "portal_sign_out")
    return front_channel_logouts(sessions) if session_key is not None else []


# --- RP-initiated logout ------------------------------------------------------------------------


class LogoutRefused(Exception):
    def __init__(self, description: str, reason: str) -> None:
        super().__init__(description)
        self.description, self.reason = description, reason


@dataclass(frozen=True)
class LogoutRequest:
    """A validated RP-initiated logout: who the app says signed out, and where to go back to."""

    connector: Connector
    subject: str = ""
    sid: str = ""
    post_logout_redirect_uri: str = ""
    state: str = ""

    @property
    def return_url(self) -> str:
        if not self.post_logout_redirect_uri:
            return ""
        if not self.state:
            return self.post_logout_redirect_uri
        return add_params_to_uri(self.post_logout_redirect_uri, [("state", self.state)])


def parse_logout_request(connector: Connector, params: Any) -> LogoutRequest:
    """Validate id_token_hint, client_id, post_logout_redirect_uri and state; raises LogoutRefused.
    A post-logout redirect URI is followed only when registered exactly and the app is named."""
    for name in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales"):
        if len(params.get(name, "")) > MAX_LOGOUT_PARAMETER:
            raise LogoutRefused(f"The parameter {name} is too long.", "oversized")
    hint_token = params.get("id_token_hint", "")
    client_id = params.get("client_id", "")
    hint = None
    if hint_token:
        hint = verify_id_token_hint(connector, hint_token)
        if hint is None:
            raise LogoutRefused("The id_token_hint is not an ID token this app received.", "invalid_id_token_hint")
    if client_id and client_id != connector.oidc.client_id:
        raise LogoutRefused("The client_id does not belong to this app.", "client_mismatch")
    uri = params.get("post_logout_redirect_uri", "")
    if uri:
        if not (hint or client_id):
            raise LogoutRefused("A post_logout_redirect_uri needs id_token_hint or client_id.", "unidentified_client")
        if uri not in connector.oidc.post_logout_redirect_uris:
            raise LogoutRefused("This post_logout_redirect_uri is not registered for the app.", "redirect_mismatch")
    return LogoutRequest(
        connector=connector,
        subject=hint.sub if hint else "",
        sid=hint.sid if hint else "",
        post_logout_redirect_uri=uri,
        state=params.get("state", ""),
    )


def session_matches(request: HttpRequest, logout: LogoutRequest) -> bool:
    """Whether the ID token names the person signed in in this browser (no need to ask them)."""
    if not request.user.is_authenticated or not logout.subject:
        return False
    if logout.subject != selectors.subject_of(logout.connector, request.user):
        return False
    return not logout.sid or logout.sid == session_id(request.session.session_key or "")


@dataclass(frozen=True)
class SignedOut:
    messages: list = field(default_factory=list)


def sign_out_browser(request: HttpRequest, logout: LogoutRequest) -> SignedOut:
    """End this browser's portal session (and with it its SAML and OIDC sign-ins); returns the
    front-channel logouts of the other apps, SAML LogoutRequests included."""
    messages: list = []
    user = request.user
    if user.is_authenticated:
        session_key = request.session.session_key or ""
        stamp = request.session.get(AUTH_TIME_KEY)
        since = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC) if stamp else None
        sessions = end_signed_in_sessions(user, session_key=session_key, reason="rp_logout")
        messages = saml_logout.logout_messages(user, session_key=session_key, since=since)
        messages += front_channel_logouts(sessions, except_connector=logout.connector)
        saml_logout.end_sessions(
            user=user, actor_label=f"oidc:{logout.connector.slug}", matching=lambda key: key == session_key
        )
        django_logout(request)
    elif logout.subject:
        end_hinted_sessions(logout)
    services.audit("oidc.logout.rp_initiated", connector=logout.connector, user=user, frontchannel=len(messages))
    return SignedOut(messages=messages)


def end_hinted_sessions(logout: LogoutRequest) -> None:
    """Nobody is signed in here: still end the OIDC sign-in the ID token names (its tokens)."""
    if not logout.sid:
        return
    for session in selectors.sessions_with_sid(logout.connector, logout.sid):
        if selectors.subject_of(logout.connector, session.user) == logout.subject:
            services.session_end(session, reason="rp_logout")
