"""Portal sessions: the idle timeout, and the new password a temporary one requires (security
headers: apps.common.security_headers)."""

import time
from collections.abc import Callable

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from apps.portal import services
from apps.portal.policy import sign_in_policy


class SessionIdleTimeoutMiddleware:
    """Sign out a portal session idle for longer than the sign-in policy's idle timeout, or signed
    in longer ago than its session lifetime (defaults: PORTAL_SESSION_IDLE_SECONDS, SESSION_COOKIE_AGE).

    Django renews a session cookie's expiry whenever the session is saved, so the cookie alone
    would let an active session live for ever; the sign-in time stored in the session bounds it.
    The last-seen stamp is rewritten at most once a minute, so most requests write nothing.
    """

    _RESOLUTION_SECONDS = 60

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and services.LAST_SEEN_KEY in session:
            now = int(time.time())
            last_seen = session[services.LAST_SEEN_KEY]
            signed_in_at = session.get(services.SIGNED_IN_AT_KEY, now)
            policy = sign_in_policy()
            if now - last_seen > policy.session_idle_seconds or now - signed_in_at > policy.session_lifetime_seconds:
                services.forget_session(session.session_key or "")
                logout(request)
            elif now - last_seen >= self._RESOLUTION_SECONDS:
                session[services.LAST_SEEN_KEY] = now
        return self.get_response(request)


class PasswordChangeRequiredMiddleware:
    """Someone signed in with a temporary password (set by an admin) chooses their own before any
    other page: the launchpad, SSO into an app, the console. Token-authenticated endpoints (the
    admin API, SCIM) are not sessions and are not concerned; signing out stays possible."""

    _EXEMPT_PREFIXES = ("/static/", "/api/", "/scim/", "/healthz", "/favicon.ico")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._exempt_paths: tuple[str, ...] = ()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and getattr(user, "must_change_password", False):
            if not self._exempt_paths:
                self._exempt_paths = (reverse("portal:password_change"), reverse("portal:logout"))
            path = request.path
            if path not in self._exempt_paths and not path.startswith(self._EXEMPT_PREFIXES):
                target = f"{self._exempt_paths[0]}?{urlencode({'next': request.get_full_path()})}"
                return HttpResponseRedirect(target)
        return self.get_response(request)
