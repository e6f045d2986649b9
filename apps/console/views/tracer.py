"""A connector's SAML tracer: capture its requests and responses for a while, and preview an assertion."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.common.errors import ApplicationError
from apps.connectors.models import Connector
from apps.console.decorators import console_view
from apps.console.forms.tracer import AssertionPreviewForm, SpReportForm, TraceStartForm
from apps.console.views.connector_steps import layout_context
from apps.console.views.connectors import connector_or_404
from apps.directory.models import User
from apps.directory.roles import Capability
from apps.directory.selectors import user_get_by_email, user_get_by_username, user_list
from apps.saml_idp import diagnosis, tracer
from apps.saml_idp.assertion_preview import assertion_preview
from apps.saml_idp.constants import BINDING_POST, BINDING_REDIRECT
from apps.saml_idp.models import SamlTraceRecord
from apps.saml_idp.trace_checks import BAD, WARN

_BINDING_LABELS = {BINDING_REDIRECT: "HTTP-Redirect", BINDING_POST: "HTTP-POST"}
_MAX_MATCHES = 10


@dataclass(frozen=True)
class RecordView:
    record: SamlTraceRecord
    binding: str
    bad: int
    warn: int


def _record_views(connector: Connector) -> list[RecordView]:
    views = []
    for record in tracer.trace_records(connector):
        levels = [problem.get("level") for problem in record.problems]
        views.append(
            RecordView(
                record=record,
                binding=_BINDING_LABELS.get(record.binding, record.binding),
                bad=levels.count(BAD),
                warn=levels.count(WARN),
            )
        )
    return views


def _capture_context(connector: Connector) -> dict:
    capturing = tracer.capturing(connector)
    until = connector.sso.trace_until if capturing else None
    return {
        "connector": connector,
        "capturing": capturing,
        "trace_until": until,
        "minutes_left": max(1, round((until - timezone.now()).total_seconds() / 60)) if until else 0,
        "records": _record_views(connector),
        "keep": settings.SAML_IDP_TRACE_KEEP,
        "retention_hours": max(1, settings.SAML_IDP_TRACE_RETENTION_SECONDS // 3600),
        "max_minutes": settings.SAML_IDP_TRACE_MAX_MINUTES,
    }


def _find_users(form: AssertionPreviewForm) -> tuple[User | None, list[User]]:
    """The chosen user, or the candidates matching the search when it is not one person."""
    if not form.is_valid():
        return None, []
    chosen = form.cleaned_data.get("user")
    if chosen:
        return User.objects.filter(pk=chosen).first(), []
    query = form.cleaned_data["q"].strip()
    exact = user_get_by_username(query) or user_get_by_email(query)
    if exact is not None:
        return exact, []
    words = query.split()
    users = user_list(search=words[0]) if words else User.objects.none()
    for word in words[1:]:
        users = users.filter(Q(username__icontains=word) | Q(first_name__icontains=word) | Q(last_name__icontains=word))
    matches = list(users.prefetch_related(None)[: _MAX_MATCHES + 1])
    if len(matches) == 1:
        return matches[0], []
    return None, matches


def _preview_context(connector: Connector, request: HttpRequest) -> dict:
    if "q" not in request.GET and "user" not in request.GET:
        return {"preview_form": AssertionPreviewForm(), "searched": False}
    form = AssertionPreviewForm(request.GET)
    user, matches = _find_users(form)
    return {
        "preview_form": form,
        "searched": form.is_valid(),
        "preview_user": user,
        "preview": assertion_preview(connector, user) if user is not None else None,
        "algorithms": diagnosis.algorithms_in_use(connector.sso),
        "matches": matches[:_MAX_MATCHES],
        "more_matches": len(matches) > _MAX_MATCHES,
    }


def _page(request: HttpRequest, connector: Connector, *, start_form: TraceStartForm | None = None, status: int = 200):
    context = {
        **layout_context(request, connector, "tracer"),
        "start_form": start_form or TraceStartForm(),
        **_capture_context(connector),
        **_preview_context(connector, request),
        **_report_context(connector, request),
    }
    return render(request, "console/tracer/page.html", context, status=status)


def _report_context(connector: Connector, request: HttpRequest) -> dict:
    """The app's own error message, read for what it points at (encryption, signing)."""
    if "report" not in request.GET:
        return {"report_form": SpReportForm(), "report_problems": None}
    form = SpReportForm(request.GET)
    problems = diagnosis.diagnose_sp_report(connector.sso, form.cleaned_data["report"]) if form.is_valid() else None
    return {"report_form": form, "report_problems": problems}


@console_view(Capability.VIEW_CONNECTORS)
@require_GET
def connector_tracer(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="sso")
    if request.htmx and request.GET.get("part") == "records":
        # Polled every few seconds while capture is on.
        return render(request, "console/tracer/_records.html", _capture_context(connector))
    return _page(request, connector)


@console_view(Capability.VIEW_CONNECTORS)
@require_GET
def connector_tracer_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """The assertion preview alone (htmx); without htmx, the whole tracer page with the preview."""
    connector = connector_or_404(slug, needs="sso")
    if not request.htmx:
        return HttpResponseRedirect(f"{reverse('console:connector_tracer', args=[slug])}?{request.GET.urlencode()}")
    context = {"connector": connector, **_preview_context(connector, request)}
    status = 400 if context["preview_form"].errors else 200
    return render(request, "console/tracer/_preview.html", context, status=status)


def _back(connector: Connector) -> HttpResponse:
    return HttpResponseRedirect(reverse("console:connector_tracer", args=[connector.slug]))


@console_view(Capability.MANAGE_CONNECTORS)
@require_POST
def connector_tracer_start(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="sso")
    form = TraceStartForm(request.POST)
    if not form.is_valid():
        return _page(request, connector, start_form=form, status=400)
    try:
        until = tracer.trace_start(actor=request.user, connector=connector, minutes=form.cleaned_data["minutes"])
    except ApplicationError as error:
        form.add_error("minutes", error.message)
        return _page(request, connector, start_form=form, status=400)
    local = timezone.localtime(until)
    messages.success(request, f"Capturing {connector.name}'s SAML messages until {local:%H:%M}.")
    return _back(connector)


@console_view(Capability.MANAGE_CONNECTORS)
@require_POST
def connector_tracer_stop(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="sso")
    tracer.trace_stop(actor=request.user, connector=connector)
    messages.success(request, "Capture stopped. The messages already recorded stay until they expire.")
    return _back(connector)


@console_view(Capability.MANAGE_CONNECTORS)
@require_POST
def connector_tracer_clear(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="sso")
    deleted = tracer.trace_clear(actor=request.user, connector=connector)
    messages.success(request, f"Deleted {deleted} recorded message{'s' if deleted != 1 else ''}.")
    return _back(connector)


urlpatterns = [
    path("<slug:slug>/tracer/", connector_tracer, name="connector_tracer"),
    path("<slug:slug>/tracer/preview", connector_tracer_preview, name="connector_tracer_preview"),
    path("<slug:slug>/tracer/start", connector_tracer_start, name="connector_tracer_start"),
    path("<slug:slug>/tracer/stop", connector_tracer_stop, name="connector_tracer_stop"),
    path("<slug:slug>/tracer/clear", connector_tracer_clear, name="connector_tracer_clear"),
]
