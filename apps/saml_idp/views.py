"""The IdP's HTTP endpoints: parse the request, call requests/services, render. Nothing else.

Why some hops exist:
- A POST-binding request arrives as a cross-site POST, which carries no SameSite=Lax session
  cookie; it is parsed, verified and then continued by a same-site GET that does carry it.
- Between the AuthnRequest and the Response the user may have to sign in. The verified request
  travels in a signed, expiring token in the continue URL (no server state), used once.
"""

import datetime
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import LazyObject, empty
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from apps.audit.middleware import client_ip
from apps.common.security_headers import allow_same_origin_framing
from apps.connectors import idp_urls
from apps.connectors.models import Connector
from apps.saml_idp import bindings, metadata, replay, selectors, services, tracer
from apps.saml_idp.constants import BINDING_POST, BINDING_REDIRECT, STATUS_NO_PASSIVE, STATUS_RESPONDER
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.logout import session_index
from apps.saml_idp.models import TraceKind
from apps.saml_idp.requests import (
    AuthnRequestInfo,
    IncomingMessage,
    LogoutRequestInfo,
    parse_authn_request,
    parse_logout_request,
    parse_logout_response,
)
from apps.saml_idp.responses import Session
from apps.saml_idp.session import AUTH_TIME_KEY

_CONTINUE_SALT = "saml_idp.continue"
_SLO_SALT = "saml_idp.slo"


# --- helpers ------------------------------------------------------------------------------------


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _error_page(request: HttpRequest, error: SamlRequestError, connector: Connector | None = None) -> HttpResponse:
    response = render(
        request,
        "saml_idp/error.html",
        {"error": error, "connector": connector},
        status=error.http_status,
    )
    return _no_store(response)


def _refuse(
    request: HttpRequest, error: SamlRequestError, connector: Connector | None, label: str = "", **details
) -> HttpResponse:
    services.sso_record_refusal(connector=connector, user=request.user, error=error, details=details, label=label)
    return _error_page(request, error, connector)


def _post_form(action: str, fields: dict[str, str]) -> HttpResponse:
    response = HttpResponse(bindings.auto_post_form(action, fields), content_type="text/html; charset=utf-8")
    return _no_store(response)


def _trace_request(
    request: HttpRequest,
    connector: Connector,
    key: LoadedKey,
    incoming: IncomingMessage,
    kind: str,
    error: SamlRequestError | None = None,
) -> None:
    # The SAML tracer (console): with capture off this is one datetime comparison, no query.
    if tracer.capturing(connector):
        tracer.record_request(
            connector, key, incoming, kind=kind, client_ip=client_ip(request), user=request.user, error=error
        )


def _send(
    request: HttpRequest, connector: Connector, issued: services.IssuedResponse, in_response_to: str = ""
) -> HttpResponse:
    """The Response to the SP's ACS (HTTP-POST binding), recorded when the tracer captures."""
    if tracer.capturing(connector):
        tracer.record_response(
            connector,
            saml_response=issued.saml_response,
            relay_state=issued.relay_state,
            in_response_to=in_response_to,
            client_ip=client_ip(request),
            user=request.user,
        )
    return _post_form(issued.acs_url, issued.form_fields())


def _sso_connector(request: HttpRequest, slug: str) -> tuple[Connector | None, HttpResponse | None]:
    """The connector if it can do SSO now; otherwise an audited error page."""
    connector = selectors.sso_connector(slug)
    if connector is None:
        error = SamlRequestError(
            "unknown_connector", "There is no app with SAML sign-in at this address.", http_status=404
        )
        return None, _refuse(request, error, None, label=slug[:100])
    if not connector.enabled:
        error = SamlRequestError(
            "connector_disabled",
            f"{connector.name} is switched off in the portal; ask your administrator.",
            http_status=403,
        )
        if tracer.capturing(connector):
            tracer.record_refused_response(
                connector, error=error, in_response_to="", client_ip=client_ip(request), user=request.user
            )
        return None, _refuse(request, error, connector)
    return connector, None


def _incoming(request: HttpRequest, parameter: str = "SAMLRequest") -> IncomingMessage:
    if request.method == "POST":
        data = request.POST
        binding = BINDING_POST
    else:
        data = request.GET
        binding = BINDING_REDIRECT
    return IncomingMessage(
        binding=binding,
        message=data.get(parameter, ""),
        relay_state=data.get("RelayState", ""),
        sig_alg=data.get("SigAlg", ""),
        signature=data.get("Signature", ""),
        raw_query=request.META.get("QUERY_STRING", "") if binding == BINDING_REDIRECT else "",
    )


def _auth_time(request: HttpRequest) -> datetime.datetime | None:
    stamp = request.session.get(AUTH_TIME_KEY)
    if stamp is not None:
        return datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC)
    return getattr(request.user, "last_login", None)


def _session_index(request: HttpRequest) -> str:
    return session_index(request.session.session_key or "")


def _signed_in_user(request: HttpRequest) -> Any:
    """The User behind `request.user`, without the lazy wrappers around it (the authentication and
    OTP middlewares add one each): building a response reads a few dozen of its attributes, and
    through two wrappers they cost about 0.1 ms per response."""
    user = request.user
    while isinstance(user, LazyObject):
        if user._wrapped is empty:
            user._setup()
        user = user._wrapped
    return user


def _session(request: HttpRequest) -> Session:
    return Session(index=_session_index(request), authn_instant=_auth_time(request) or timezone.now())


def _continue_url(connector: Connector, info: AuthnRequestInfo, received: float) -> str:
    token = signing.dumps(
        {"c": str(connector.pk), "r": info.to_dict(), "t": received, "n": secrets.token_hex(12)},
        salt=_CONTINUE_SALT,
        compress=True,
    )
    return f"{reverse('saml_idp:sso_continue', args=[connector.slug])}?t={token}"


def _signed_in_enough(request: HttpRequest, connector: Connector, info: AuthnRequestInfo, received: float) -> bool:
    if not request.user.is_authenticated:
        return False
    auth_time = _auth_time(request)
    if info.force_authn and (auth_time is None or auth_time.timestamp() < received):
        return False
    return not services.needs_sign_in(connector, auth_time, now=timezone.now())


def _answer(
    request: HttpRequest,
    connector: Connector,
    info: AuthnRequestInfo,
    received: float,
    nonce: str | None,
    key: LoadedKey | None = None,
) -> HttpResponse:
    """Respond to a verified AuthnRequest: sign-in page, error, or the Response to the ACS."""
    if not _signed_in_enough(request, connector, info, received):
        if info.is_passive:
            # IsPassive: never show a page; tell the SP that we could not without one.
            error = SamlRequestError(
                "no_passive",
                "Passive sign-in needs a portal session.",
                status=STATUS_RESPONDER,
                sub_status=STATUS_NO_PASSIVE,
            )
            issued = services.sso_error_response(connector=connector, user=request.user, request=info, error=error)
            return _send(request, connector, issued, info.id)
        next_url = request.get_full_path() if nonce else _continue_url(connector, info, received)
        return redirect_to_login(next_url, settings.LOGIN_URL)
    if nonce is not None and not replay.remember_once(
        purpose="continue",
        scope=str(connector.pk),
        message_id=nonce,
        ttl_seconds=settings.SAML_IDP_PENDING_REQUEST_SECONDS,
    ):
        return _refuse(
            request,
            SamlRequestError("replay", "This sign-in was already completed: start again from the app."),
            connector,
            request_id=info.id,
        )
    try:
        issued = services.sso_issue(
            connector=connector, user=_signed_in_user(request), session=_session(request), request=info, key=key
        )
    except SamlRequestError as error:
        if info.is_passive:
            issued = services.sso_error_response(
                connector=connector, user=request.user, request=info, error=error, audited=True
            )
            return _send(request, connector, issued, info.id)
        if tracer.capturing(connector):
            tracer.record_refused_response(
                connector, error=error, in_response_to=info.id, client_ip=client_ip(request), user=request.user
            )
        return _error_page(request, error, connector)
    return _send(request, connector, issued, info.id)


# --- SSO ----------------------------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "POST"])
def sso(request: HttpRequest, slug: str) -> HttpResponse:
    """SP-initiated SSO, HTTP-Redirect (GET) and HTTP-POST bindings."""
    connector, refused = _sso_connector(request, slug)
    if refused:
        return refused
    incoming = _incoming(request)
    key = services.connector_key(connector)
    try:
        info = parse_authn_request(connector, key, incoming)
    except SamlRequestError as error:
        _trace_request(request, connector, key, incoming, TraceKind.AUTHN_REQUEST, error)
        return _refuse(request, error, connector, binding=incoming.binding)
    _trace_request(request, connector, key, incoming, TraceKind.AUTHN_REQUEST)
    received = time.time()
    if request.method == "POST":
        # The session cookie (SameSite=Lax) did not come with this cross-site POST.
        return HttpResponseRedirect(_continue_url(connector, info, received), status=303)
    return _answer(request, connector, info, received, nonce=None, key=key)


@require_GET
def sso_continue(request: HttpRequest, slug: str) -> HttpResponse:
    """Resume a verified AuthnRequest after the sign-in page (or after the POST binding's hop)."""
    connector, refused = _sso_connector(request, slug)
    if refused:
        return refused
    try:
        pending = signing.loads(
            request.GET.get("t", ""), salt=_CONTINUE_SALT, max_age=settings.SAML_IDP_PENDING_REQUEST_SECONDS
        )
    except signing.BadSignature:
        error = SamlRequestError(
            "pending_expired", "This sign-in took too long or its link is damaged: start again from the app."
        )
        return _refuse(request, error, connector)
    if pending.get("c") != str(connector.pk):
        return _refuse(request, SamlRequestError("malformed", "This sign-in link belongs to another app."), connector)
    try:
        info = AuthnRequestInfo.from_dict(pending["r"])
        received, nonce = float(pending["t"]), str(pending["n"])
    except (KeyError, TypeError, ValueError):
        # Signed by us but in another shape (issued by an older version of this code).
        return _refuse(request, SamlRequestError("pending_expired", "Start the sign-in from the app again."), connector)
    return _answer(request, connector, info, received, nonce=nonce)


def _navigation_from_this_portal(request: HttpRequest) -> bool:
    """Whether the browser says this GET comes from the portal's own pages, or from the person
    (address bar, bookmark). Any other page can only make the browser send the GET."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    # Browsers without Fetch Metadata: the Referer, which the portal's Referrer-Policy keeps for
    # its own pages. A page that hides its Referer gets the confirmation.
    referer = request.headers.get("Referer", "")
    return bool(referer) and urlsplit(referer).netloc == request.get_host()


def _launch_confirmation(request: HttpRequest, connector: Connector, requested_relay_state: str) -> HttpResponse:
    context = {"connector": connector, "relay_state": requested_relay_state}
    return _no_store(render(request, "saml_idp/launch_confirm.html", context))


@require_http_methods(["GET", "POST"])
def launch(request: HttpRequest, slug: str) -> HttpResponse:
    """IdP-initiated SSO (the launchpad): a Response to the default ACS, without InResponseTo.

    A link that signs the person in would let any page do it without them (sign-in without
    intent). So the launchpad's tiles post a form with the CSRF token (checked by Django's
    middleware), a GET signs in only when it comes from the portal itself, and any other GET gets
    a page whose button posts.
    """
    connector, refused = _sso_connector(request, slug)
    if refused:
        return refused
    requested_relay_state = (request.POST if request.method == "POST" else request.GET).get("RelayState", "")
    try:
        relay_state = services.launch_relay_state(connector, requested_relay_state)
    except SamlRequestError as error:
        return _refuse(request, error, connector, flow="idp")
    if not request.user.is_authenticated or services.needs_sign_in(connector, _auth_time(request), now=timezone.now()):
        # After the sign-in page the portal sends the browser back here: a same-origin GET.
        query = f"?{urlencode({'RelayState': requested_relay_state})}" if requested_relay_state else ""
        return redirect_to_login(f"{request.path}{query}", settings.LOGIN_URL)
    if request.method == "GET" and not _navigation_from_this_portal(request):
        return _launch_confirmation(request, connector, requested_relay_state)
    try:
        issued = services.sso_issue(
            connector=connector,
            user=_signed_in_user(request),
            session=_session(request),
            request=None,
            relay_state=relay_state,
        )
    except SamlRequestError as error:
        return _error_page(request, error, connector)
    return _send(request, connector, issued)


# --- SLO ----------------------------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "POST"])
def slo(request: HttpRequest, slug: str) -> HttpResponse:
    """Single logout: LogoutRequest in, the portal session ended, LogoutResponse out."""
    connector = selectors.sso_connector(slug)
    if connector is None:
        error = SamlRequestError(
            "unknown_connector", "There is no app with SAML sign-in at this address.", http_status=404
        )
        return _refuse_slo(request, error, None, label=slug[:100])
    if request.method == "GET" and "t" in request.GET:
        return _slo_finish(request, connector)
    if "SAMLResponse" in (request.POST if request.method == "POST" else request.GET):
        return _slo_response(request, connector)
    incoming = _incoming(request)
    key = services.connector_key(connector)
    try:
        info = parse_logout_request(connector, key, incoming, expected_destination=idp_urls.slo_url(connector))
    except SamlRequestError as error:
        _trace_request(request, connector, key, incoming, TraceKind.LOGOUT_REQUEST, error)
        return _refuse_slo(request, error, connector)
    _trace_request(request, connector, key, incoming, TraceKind.LOGOUT_REQUEST)
    token = signing.dumps(
        {
            "c": str(connector.pk),
            "r": [info.id, info.issuer, info.name_id, info.binding, info.relay_state, info.signed],
            "s": list(info.session_indexes),
        },
        salt=_SLO_SALT,
        compress=True,
    )
    if request.method == "POST":
        # As for SSO: the session cookie is only sent on the same-site GET.
        return HttpResponseRedirect(f"{reverse('saml_idp:slo', args=[slug])}?t={token}", status=303)
    return _slo_answer(request, connector, info)


def _slo_response(request: HttpRequest, connector: Connector) -> HttpResponse:
    """The app's answer to the LogoutRequest the portal sent it, in a frame of the signed-out page."""
    incoming = _incoming(request, parameter="SAMLResponse")
    key = services.connector_key(connector)
    try:
        answer = parse_logout_response(connector, key, incoming, expected_destination=idp_urls.slo_url(connector))
    except SamlRequestError as error:
        _trace_request(request, connector, key, incoming, TraceKind.LOGOUT_RESPONSE_RECEIVED, error)
        return allow_same_origin_framing(_refuse_slo(request, error, connector))
    _trace_request(request, connector, key, incoming, TraceKind.LOGOUT_RESPONSE_RECEIVED)
    succeeded = services.slo_record_response(connector=connector, user=request.user, response=answer)
    context = {"connector": connector, "succeeded": succeeded}
    return allow_same_origin_framing(_no_store(render(request, "saml_idp/slo_done.html", context)))


def _slo_finish(request: HttpRequest, connector: Connector) -> HttpResponse:
    try:
        pending = signing.loads(request.GET["t"], salt=_SLO_SALT, max_age=settings.SAML_IDP_PENDING_REQUEST_SECONDS)
    except signing.BadSignature:
        error = SamlRequestError("pending_expired", "This sign-out link expired or is damaged.")
        return _refuse_slo(request, error, connector)
    if pending.get("c") != str(connector.pk):
        return _refuse_slo(
            request, SamlRequestError("malformed", "This sign-out link belongs to another app."), connector
        )
    try:
        request_id, issuer, name_id, binding, relay_state, signed = pending["r"]
        session_indexes = tuple(str(index) for index in pending["s"])
    except (KeyError, TypeError, ValueError):
        return _refuse_slo(request, SamlRequestError("pending_expired", "This sign-out link expired."), connector)
    info = LogoutRequestInfo(
        id=request_id,
        issuer=issuer,
        name_id=name_id,
        session_indexes=session_indexes,
        binding=binding,
        relay_state=relay_state,
        signed=signed,
    )
    return _slo_answer(request, connector, info)


def _slo_answer(request: HttpRequest, connector: Connector, info: LogoutRequestInfo) -> HttpResponse:
    user = request.user
    answer = services.slo_complete(connector=connector, user=user, request=info, session_index=_session_index(request))
    if answer.binding and tracer.capturing(connector):
        tracer.record_logout_response_sent(
            connector,
            xml=answer.xml,
            binding=answer.binding,
            relay_state=info.relay_state,
            client_ip=client_ip(request),
            user=user,
        )
    if answer.end_session:
        logout(request)
    if answer.binding == BINDING_POST:
        return _post_form(answer.url, answer.fields)
    if answer.binding == BINDING_REDIRECT:
        return _no_store(HttpResponseRedirect(answer.url))
    context = {"connector": connector, "still_signed_in": user.is_authenticated and not answer.end_session}
    return _no_store(render(request, "saml_idp/logged_out.html", context))


def _refuse_slo(
    request: HttpRequest, error: SamlRequestError, connector: Connector | None, label: str = ""
) -> HttpResponse:
    services.slo_record_refusal(connector=connector, user=request.user, error=error, label=label)
    return _error_page(request, error, connector)


# --- Metadata -----------------------------------------------------------------------------------


def _metadata_response(xml: bytes, filename: str, download: bool) -> HttpResponse:
    response = HttpResponse(xml, content_type=metadata.CONTENT_TYPE)
    if download:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def connector_metadata(request: HttpRequest, slug: str) -> HttpResponse:
    connector = selectors.sso_connector(slug)
    if connector is None:
        return HttpResponse("No app with SAML sign-in at this address.\n", status=404, content_type="text/plain")
    xml, keys = metadata.connector_metadata(connector)
    services.metadata_fetch_record(
        connector=connector,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        keys=keys,
    )
    return _metadata_response(xml, f"{connector.slug}-idp-metadata.xml", "download" in request.GET)


@require_GET
def portal_metadata(request: HttpRequest) -> HttpResponse:
    xml = metadata.portal_metadata(request.build_absolute_uri(request.path))
    if xml is None:
        return HttpResponse("No app has SAML sign-in configured yet.\n", status=404, content_type="text/plain")
    return _metadata_response(xml, "idp-portal-metadata.xml", "download" in request.GET)
