"""The authorization endpoint's decisions (OpenID Connect Core 3.1.2): the toolkit validates the
request against the connector's client, then the portal session is weighed (sign-in, prompt,
max_age, id_token_hint, a second factor for acr_values=mfa or the connector's own rule), the
person's right to the app (active and assigned), and replays of state and nonce. The answer is an
`Outcome` for the view to carry: a redirect (to the app, with a code or an OAuth error; or to the
portal's sign-in) or an error page when the request cannot be trusted to name a redirect URI.
"""

import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.urls import reverse
from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError
from oauthlib.common import add_params_to_uri

from apps.connectors.models import Connector
from apps.oidc import selectors, services, tracer
from apps.oidc.hints import id_token_hint_subject
from apps.oidc.models import TraceOutcome
from apps.oidc.server import core
from apps.oidc.session import ACR_MFA, SignIn, sign_in_of
from apps.oidc.validator import pkce_method_allowed, unverified_header
from apps.saml_idp.replay import remember_once

REAUTH_PARAMETER = "portal_reauth"
_REAUTH_SALT = "apps.oidc.authorize.reauth"


@dataclass(frozen=True)
class Outcome:
    """`url` to redirect to, or (no url) an error page with `status`, `error` and `description`."""

    url: str = ""
    error: str = ""
    description: str = ""
    status: int = 302


class _Refusal(Exception):
    def __init__(self, error: str, description: str, reason: str = "") -> None:
        super().__init__(description)
        self.error, self.description, self.reason = error, description, reason or error


def _oversized(request: HttpRequest) -> str:
    if len(request.META.get("QUERY_STRING", "")) > settings.OIDC_MAX_QUERY_LENGTH:
        return "The authorization request is too long."
    for name, values in request.GET.lists():
        if len(values) > 1:
            return f"The parameter {name[:40]} is given more than once."
        if len(name) > 64 or len(values[0]) > settings.OIDC_MAX_PARAMETER_LENGTH:
            return f"The parameter {name[:40]} is longer than {settings.OIDC_MAX_PARAMETER_LENGTH} characters."
    return ""


def _error_page(request: HttpRequest, connector: Connector, error: str, description: str, reason: str) -> Outcome:
    user = request.user if request.user.is_authenticated else None
    services.audit("oidc.authorize.refused", connector=connector, user=user, reason=reason, error=error)
    tracer.record(connector, request, outcome=TraceOutcome.REFUSED, error=error, description=description)
    return Outcome(error=error, description=description, status=400 if error != "access_denied" else 403)


def _redirect_error(request: HttpRequest, connector: Connector, credentials: dict, refusal: _Refusal) -> Outcome:
    user = request.user if request.user.is_authenticated else None
    services.audit("oidc.authorize.refused", connector=connector, user=user, reason=refusal.reason, error=refusal.error)
    tracer.record(
        connector, request, outcome=TraceOutcome.REFUSED, error=refusal.error, description=refusal.description
    )
    params = [("error", refusal.error), ("error_description", refusal.description)]
    if credentials.get("state"):
        params.append(("state", credentials["state"]))
    return Outcome(url=with_issuer(add_params_to_uri(credentials["redirect_uri"], params), connector))


def with_issuer(url: str, connector: Connector) -> str:
    """The authorization response names its issuer (RFC 9207), the connector's own: a client that
    talks to several issuers can tell whose code or error it got."""
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != "iss"]
    query.append(("iss", connector.idp_entity_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _reauth_marker(request: HttpRequest) -> float | None:
    value = request.GET.get(REAUTH_PARAMETER)
    if not value:
        return None
    try:
        return float(signing.loads(value, salt=_REAUTH_SALT, max_age=3600))
    except (signing.BadSignature, TypeError, ValueError):
        return None


def _sign_in_url(request: HttpRequest, *, fresh: bool) -> str:
    """The portal's sign-in page, coming back to this request (marked: a sign-in after now counts)."""
    query = request.GET.copy()
    query.pop(REAUTH_PARAMETER, None)
    query.pop("prompt", None)
    if fresh:
        query[REAUTH_PARAMETER] = signing.dumps(time.time(), salt=_REAUTH_SALT)
    back = f"{request.path}?{query.urlencode()}"
    return f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': back})}"


def _check_request_object(request: HttpRequest) -> None:
    """Request objects are not supported (OIDC Core 6): there is no key of the app to verify one
    with (client secrets are stored hashed, so HS256 cannot be checked either)."""
    if "request_uri" in request.GET:
        raise _Refusal("request_uri_not_supported", "Request objects by reference are not supported.")
    if "request" in request.GET:
        algorithm = str(unverified_header(request.GET["request"]).get("alg", ""))[:20] or "unreadable"
        raise _Refusal(
            "request_not_supported",
            "Request objects are not supported; send the parameters in the query.",
            reason=f"request_object_alg_{algorithm.lower()}",
        )


def _check_parameters(request: HttpRequest, scopes: list[str], credentials: dict) -> None:
    _check_request_object(request)
    if "openid" not in scopes:
        raise _Refusal("invalid_scope", "An OpenID Connect sign-in asks for the openid scope.")
    if credentials.get("code_challenge") and not pkce_method_allowed(credentials.get("code_challenge_method")):
        raise _Refusal("invalid_request", "PKCE must use code_challenge_method=S256.", reason="pkce_plain")
    max_age = request.GET.get("max_age")
    if max_age is not None and (not max_age.isdigit() or len(max_age) > 9):
        raise _Refusal("invalid_request", "max_age is a whole number of seconds.")


def _needs_sign_in(request: HttpRequest, connector: Connector, sign_in: SignIn, prompt: set[str]) -> bool:
    """prompt=login, an older sign-in than max_age, or an id_token_hint naming someone else."""
    marker = _reauth_marker(request)
    if marker is not None and sign_in.auth_time.timestamp() >= marker - 1:
        return False
    if "login" in prompt:
        return True
    max_age = request.GET.get("max_age")
    if max_age is not None and sign_in.older_than(int(max_age)):
        return True
    hint = request.GET.get("id_token_hint")
    if hint:
        hinted = id_token_hint_subject(connector, hint)
        if hinted is None or hinted != selectors.subject_of(connector, request.user):
            return True
    return False


def _needs_second_factor(request: HttpRequest, connector: Connector, sign_in: SignIn) -> bool:
    wanted = connector.oidc.require_mfa or ACR_MFA in request.GET.get("acr_values", "").split()
    return wanted and not sign_in.has_mfa


def _check_replays(connector: Connector, credentials: dict) -> None:
    """A state or nonce that already led to a code is a replayed authorization request."""
    window = settings.OIDC_REPLAY_WINDOW_SECONDS
    for name in ("state", "nonce"):
        value = credentials.get(name)
        if value and not remember_once(
            purpose=f"oidc_{name}", scope=connector.oidc.client_id, message_id=value, ttl_seconds=window
        ):
            raise _Refusal(
                "invalid_request", f"This {name} was used before: start the sign-in again.", f"{name}_replay"
            )


def authorize(request: HttpRequest, connector: Connector) -> Outcome:
    if not connector.enabled:
        return _error_page(
            request,
            connector,
            "access_denied",
            f"{connector.name} is switched off in the portal.",
            "connector_disabled",
        )
    oversized = _oversized(request)
    if oversized:
        return _error_page(request, connector, "invalid_request", oversized, "oversized")
    server = core(request, connector.slug)
    try:
        scopes, credentials = server.validate_authorization_request(request)
    except FatalClientError as error:
        failure = error.oauthlib_error
        return _error_page(request, connector, failure.error, failure.description, failure.error)
    except OAuthToolkitError as error:
        failure = error.oauthlib_error
        refusal = _Refusal(failure.error, failure.description)
        return _redirect_error(
            request, connector, {"redirect_uri": failure.redirect_uri, "state": failure.state}, refusal
        )
    prompt = set(request.GET.get("prompt", "").split())
    try:
        _check_parameters(request, scopes, credentials)
        if not request.user.is_authenticated:
            if "none" in prompt:
                raise _Refusal("login_required", "Nobody is signed in to the portal.")
            tracer.record(connector, request, outcome=TraceOutcome.LOGIN)
            return Outcome(url=_sign_in_url(request, fresh="login" in prompt))
        sign_in = sign_in_of(request)
        if _needs_sign_in(request, connector, sign_in, prompt):
            if "none" in prompt:
                raise _Refusal("login_required", "The app asks for a fresh sign-in.")
            tracer.record(connector, request, outcome=TraceOutcome.LOGIN)
            return Outcome(url=_sign_in_url(request, fresh=True))
        if _needs_second_factor(request, connector, sign_in):
            if "none" in prompt:
                raise _Refusal("interaction_required", "The app asks for a second factor.")
            tracer.record(connector, request, outcome=TraceOutcome.LOGIN)
            back = request.get_full_path()
            return Outcome(url=f"{reverse('portal:mfa')}?{urlencode({'next': back})}")
        refusal = selectors.may_sign_in(connector, request.user)
        if refusal:
            raise _Refusal("access_denied", _DENIED[refusal], refusal)
        _check_replays(connector, credentials)
    except _Refusal as refusal:
        return _redirect_error(request, connector, credentials, refusal)
    credentials["sign_in"] = sign_in
    try:
        url, _headers, _body, _status = server.create_authorization_response(
            request=request, scopes=scopes, credentials=credentials, allow=True
        )
    except OAuthToolkitError as error:
        failure = error.oauthlib_error
        return _redirect_error(request, connector, credentials, _Refusal(failure.error, failure.description))
    services.audit(
        "oidc.authorize.success", connector=connector, user=request.user, scope=" ".join(scopes), acr=sign_in.acr
    )
    tracer.record(connector, request, outcome=TraceOutcome.ACCEPTED)
    return Outcome(url=with_issuer(url, connector))


_DENIED = {
    "not_assigned": "You are not assigned to this app; ask your administrator for access.",
    "user_suspended": "Your account is not active, so it cannot sign in to apps.",
    "connector_disabled": "This app is switched off in the portal.",
}
