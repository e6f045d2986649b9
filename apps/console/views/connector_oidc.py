"""A connector's OpenID Connect pages: the Sign-in (OIDC) tab (what to give the app, the client,
its URIs, scopes and token lifetimes), client secret rotation, and the OIDC tracer (authorization
requests as they arrive, and the claims a chosen user would get)."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.common.errors import ApplicationError
from apps.connectors import idp_urls, services
from apps.connectors.oidc_settings import oidc_client_secret_rotate
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms.connector_oidc import ClaimsPreviewForm, OidcForm, SecretRotateForm
from apps.console.forms.tracer import TraceStartForm
from apps.console.views.connector_oidc_secret import oidc_secret_page
from apps.console.views.connector_steps import OIDC, after_save, in_wizard, layout_context
from apps.console.views.connectors import connector_or_404, require_manage
from apps.directory.roles import Capability
from apps.directory.selectors import user_get_by_email, user_get_by_username
from apps.oidc import tracer
from apps.saml_idp.keys import published_keys


def _oidc_connector(slug: str):
    connector = connector_or_404(slug)
    if not connector.has_oidc:
        raise Http404("This connector does not sign in with OpenID Connect.")
    return connector


@console_view(Capability.VIEW_CONNECTORS)
def connector_oidc(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _oidc_connector(slug)
    oidc = connector.oidc
    status = 200
    if request.method == "POST":
        require_manage(request)
        form = OidcForm(request.POST)
        if form.is_valid():
            try:
                connector = services.connector_update(
                    actor=request.user, connector=connector, oidc=form.service_changes()
                )
            except (ValidationError, ApplicationError) as error:
                add_service_errors(form, error, field_for=lambda name: name.removeprefix("oidc."))
            else:
                messages.success(request, "Sign-in settings saved.")
                if connector.issued_client_secret:
                    back = reverse(OIDC.url_name, args=[connector.slug]) + ("?wizard=1" if in_wizard(request) else "")
                    return oidc_secret_page(request, connector, connector.issued_client_secret, back)
                return after_save(request, connector, OIDC)
        status = 400
    else:
        form = OidcForm(initial=OidcForm.initial_from(oidc))
    context = {
        **layout_context(request, connector, "oidc"),
        "form": form,
        "oidc": oidc,
        "urls": idp_urls.oidc_urls(connector),
        "keys": published_keys(connector),
        "rotate_form": SecretRotateForm(),
    }
    return render(request, "console/connectors/oidc.html", context, status=status)


@console_view(Capability.MANAGE_CONNECTORS, sensitive=True)
def connector_oidc_secret_rotate(request: HttpRequest, slug: str) -> HttpResponse:
    """POST: a new secret, shown once (after the password or a code again, as for tokens)."""
    connector = _oidc_connector(slug)
    back = reverse(OIDC.url_name, args=[connector.slug])
    if request.method != "POST":
        return HttpResponseRedirect(back)  # e.g. back from the re-authentication prompt
    form = SecretRotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The overlap is a number of hours from 0 to 720.")
        return HttpResponseRedirect(back)
    try:
        issued = oidc_client_secret_rotate(
            actor=request.user, connector=connector, overlap_seconds=form.cleaned_data["overlap_hours"] * 3600
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return HttpResponseRedirect(back)
    connector.oidc.refresh_from_db()
    return oidc_secret_page(request, connector, issued.secret, back)


# --- Tracer -------------------------------------------------------------------------------------


def _tracer_context(request: HttpRequest, connector) -> dict:
    capturing = tracer.capturing(connector)
    until = connector.oidc.trace_until if capturing else None
    preview_form = ClaimsPreviewForm(request.GET or None)
    preview, chosen = None, None
    if preview_form.is_bound and preview_form.is_valid():
        query = preview_form.cleaned_data["user"].strip()
        chosen = user_get_by_username(query) or user_get_by_email(query)
        if chosen is None:
            preview_form.add_error("user", "No user has this username or email.")
        else:
            preview = tracer.claims_preview(connector, chosen)
    return {
        **layout_context(request, connector, "oidc_tracer"),
        "capturing": capturing,
        "trace_until": until,
        "minutes_left": max(1, round((until - timezone.now()).total_seconds() / 60)) if until else 0,
        "records": tracer.trace_records(connector),
        "max_minutes": settings.SAML_IDP_TRACE_MAX_MINUTES,
        "start_form": TraceStartForm(),
        "preview_form": preview_form,
        "preview": preview,
        "chosen": chosen,
    }


@console_view(Capability.VIEW_CONNECTORS)
def connector_oidc_tracer(request: HttpRequest, slug: str) -> HttpResponse:
    connector = _oidc_connector(slug)
    return render(request, "console/tracer/oidc.html", _tracer_context(request, connector))


@console_view(Capability.MANAGE_CONNECTORS)
@require_POST
def connector_oidc_tracer_action(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    connector = _oidc_connector(slug)
    try:
        if action == "start":
            form = TraceStartForm(request.POST)
            minutes = form.cleaned_data["minutes"] if form.is_valid() else 0
            tracer.trace_start(actor=request.user, connector=connector, minutes=minutes)
        elif action == "stop":
            tracer.trace_stop(actor=request.user, connector=connector)
        elif action == "clear":
            tracer.trace_clear(actor=request.user, connector=connector)
    except ApplicationError as error:
        messages.error(request, error.message)
    return HttpResponseRedirect(reverse("console:connector_oidc_tracer", args=[connector.slug]))


urlpatterns = [
    path("<slug:slug>/oidc/", connector_oidc, name="connector_oidc"),
    path("<slug:slug>/oidc/secret/", connector_oidc_secret_rotate, name="connector_oidc_secret_rotate"),
    path("<slug:slug>/oidc/tracer/", connector_oidc_tracer, name="connector_oidc_tracer"),
    path("<slug:slug>/oidc/tracer/<slug:action>/", connector_oidc_tracer_action, name="connector_oidc_tracer_action"),
]
