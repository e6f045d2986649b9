"""OpenID Connect endpoints of each connector's issuer (`/oidc/<slug>/...`). Thin: they hand the
request to apps.oidc.authorize, apps.oidc.logout or the toolkit's server (apps.oidc.server) and
carry the answer back."""

import json

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from oauthlib.common import add_params_to_uri

from apps.audit.middleware import client_ip
from apps.common.security_headers import allow_frames_and_forms
from apps.connectors import idp_urls
from apps.connectors.models import Connector
from apps.oidc import authorize as authorization
from apps.oidc import discovery, keys, logout, selectors, services
from apps.oidc.server import core
from apps.saml_idp.services import metadata_fetch_record


def _connector(slug: str) -> Connector:
    connector = selectors.oidc_connector(slug)
    if connector is None:
        raise Http404("No OpenID Connect app here.")
    return connector


def _cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _oauthlib_response(headers: dict, body: str, status: int) -> HttpResponse:
    response = HttpResponse(content=body or "", status=status, content_type="application/json")
    for name, value in headers.items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def _error_page(request: HttpRequest, connector: Connector | None, error: str, description: str, status: int):
    context = {"connector": connector, "error": error, "description": description}
    response = render(request, "oidc/error.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


# --- Discovery and keys -------------------------------------------------------------------------


@require_GET
def provider_configuration(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _connector(slug)
    response = JsonResponse(discovery.provider_metadata(connector))
    response["Cache-Control"] = f"public, max-age={settings.OIDC_JWKS_MAX_AGE_SECONDS}"
    return _cors(response)


@require_GET
def jwks(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _connector(slug)
    published = keys.jwks_keys(connector)
    # The key page shows which apps have fetched the next key before it is rotated to, as for SAML.
    metadata_fetch_record(
        connector=connector,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        keys=published,
    )
    response = JsonResponse({"keys": [keys.public_jwk(key) for key in published]})
    response["Cache-Control"] = f"public, max-age={settings.OIDC_JWKS_MAX_AGE_SECONDS}"
    return _cors(response)


# --- Sign-in ------------------------------------------------------------------------------------


def _continue_page(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect to the app, as a page when the request came from a portal form (the sign-in):
    browsers apply the form's `form-action` to the redirects that follow it."""
    if request.META.get("HTTP_SEC_FETCH_SITE") != "same-origin":
        return HttpResponseRedirect(url)
    response = HttpResponse(
        f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={escape(url)}">'
        f'<title>Signing in</title><p><a href="{escape(url)}">Continue to the app</a></p>',
        content_type="text/html; charset=utf-8",
    )
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@csrf_exempt
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _connector(slug)
    if request.method == "POST":
        # OIDC Core 3.1.2.1 allows a form post: continue as the equivalent GET.
        query = QueryDict(mutable=True)
        query.update({name: value for name, value in request.POST.items() if name != "csrfmiddlewaretoken"})
        return HttpResponseRedirect(f"{request.path}?{query.urlencode()}", status=303)
    outcome = authorization.authorize(request, connector)
    if outcome.url:
        response = _continue_page(request, outcome.url)
        response["Cache-Control"] = "no-store"
        return response
    return _error_page(request, connector, outcome.error, outcome.description, outcome.status)


@never_cache
@require_GET
def launch(request: HttpRequest, slug: str) -> HttpResponse:
    """The launchpad tile: the app's own login URL, else an authorization request to its first
    redirect URI (an app that insists on state or PKCE needs its login URL set)."""
    connector = _connector(slug)
    oidc = connector.oidc
    if oidc.login_url:
        return HttpResponseRedirect(oidc.login_url)
    if not oidc.default_redirect_uri or oidc.is_public:
        return _error_page(
            request, connector, "launch_unavailable", f"Open {connector.name} itself to sign in.", status=400
        )
    params = [
        ("client_id", oidc.client_id),
        ("redirect_uri", oidc.default_redirect_uri),
        ("response_type", "code"),
        ("scope", " ".join(scope for scope in oidc.allowed_scopes if scope != "offline_access")),
    ]
    return HttpResponseRedirect(add_params_to_uri(idp_urls.oidc_endpoint(connector, "authorization_endpoint"), params))


# --- Back-channel endpoints (called by the app's server) -----------------------------------------


def _refused_token(connector: Connector, body: str, status: int) -> None:
    if status == 200:
        return
    try:
        error = json.loads(body or "{}").get("error", "")
    except ValueError:
        error = ""
    services.audit("oidc.token.refused", connector=connector, error=error, status=status)


@csrf_exempt
@require_POST
def token(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _connector(slug)
    # One transaction: the grant's deletion, the tokens, the ID token row and the session link
    # commit together (and in one flush rather than five).
    with transaction.atomic():
        _url, headers, body, status = core(request, connector.slug).create_token_response(request)
    _refused_token(connector, body, status)
    return _cors(_oauthlib_response(headers, body, status))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def userinfo(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _connector(slug)
    _url, headers, body, status = core(request, connector.slug).create_userinfo_response(request)
    return _cors(_oauthlib_response(headers, body, status))


@csrf_exempt
@require_POST
def introspect(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _connector(slug)
    headers, body, status = core(request, connector.slug).create_introspect_response(request)
    return _oauthlib_response(headers, body, status)


@csrf_exempt
@require_POST
def revoke(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _connector(slug)
    _url, headers, body, status = core(request, connector.slug).create_revocation_response(request)
    return _cors(_oauthlib_response(headers, body, status))


# --- Logout -------------------------------------------------------------------------------------


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def end_session(request: HttpRequest, slug: str) -> HttpResponse:
    """RP-initiated logout: with an ID token naming this browser's person, at once; otherwise the
    person confirms (a POST with the CSRF token), so no other site can sign them out."""
    connector = _connector(slug)
    params = request.POST if request.method == "POST" else request.GET
    try:
        parsed = logout.parse_logout_request(connector, params)
    except logout.LogoutRefused as refusal:
        services.audit("oidc.logout.refused", connector=connector, reason=refusal.reason)
        return _error_page(request, connector, "invalid_request", refusal.description, status=400)
    confirmed = request.method == "POST" and request.POST.get("confirm") == "yes"
    if request.user.is_authenticated and not confirmed and not logout.session_matches(request, parsed):
        context = {"connector": connector, "params": {k: v for k, v in params.items() if k in logout.KEPT}}
        return render(request, "oidc/logout_confirm.html", context)
    signed_out = logout.sign_out_browser(request, parsed)
    if not signed_out.messages and parsed.return_url:
        return _continue_page(request, parsed.return_url)
    context = {"connector": connector, "slo": signed_out.messages, "return_url": parsed.return_url}
    response = render(request, "oidc/signed_out.html", context)
    return allow_frames_and_forms(response, [message.origin for message in signed_out.messages])
