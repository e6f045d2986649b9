"""The audit log: every change and sign-in, filterable, exportable as CSV."""

import csv
import datetime
from collections.abc import Iterator

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_event_list
from apps.console.decorators import console_view
from apps.console.forms.audit import AuditFilterForm
from apps.directory.roles import Capability

CSV_COLUMNS = (
    "time",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target",
    "before",
    "after",
    "ip",
    "request_id",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _filtered_events(form: AuditFilterForm) -> QuerySet[AuditEvent]:
    if not form.is_valid():
        return AuditEvent.objects.none()
    data = form.cleaned_data

    def day_start(day: datetime.date | None) -> datetime.datetime | None:
        if day is None:
            return None
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))

    until = data["until"] + datetime.timedelta(days=1) if data["until"] else None
    return audit_event_list(
        action=data["action"] or None,
        actor_label=data["actor"] or None,
        target_label=data["target"] or None,
        since=day_start(data["since"]),
        until=day_start(until),
    ).order_by("-created", "-id")


@console_view(Capability.VIEW_AUDIT)
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    page = Paginator(_filtered_events(form), settings.CONSOLE_PAGE_SIZE).get_page(request.GET.get("page"))
    filtered = any(request.GET.get(name) for name in form.fields)
    context = {"nav": "audit", "form": form, "page_obj": page, "events": page.object_list, "filtered": filtered}
    return render(request, "console/audit/list.html", context, status=400 if form.errors else 200)


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        row = (
            event.created.isoformat(),
            event.actor_label,
            event.action,
            event.target_type,
            event.target_id,
            event.target_label,
            "" if event.before is None else event.before,
            "" if event.after is None else event.after,
            event.ip,
            event.request_id,
        )
        yield writer.writerow([_csv_cell(value) for value in row])


@console_view(Capability.VIEW_AUDIT)
def audit_export(request: HttpRequest) -> HttpResponse:
    """The filtered log as CSV, streamed so a large export never sits in memory."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/audit/list.html", {"nav": "audit", "form": form, "events": []}, status=400)
    response = StreamingHttpResponse(_csv_rows(_filtered_events(form)), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


urlpatterns = [
    path("", audit_list, name="audit_list"),
    path("export.csv", audit_export, name="audit_export"),
]
