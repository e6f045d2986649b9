"""The audit log: every change and sign-in, filterable, readable as before -> after, exportable as
CSV and JSON Lines (the same documented fields, apps.audit.presentation.EXPORT_FIELDS), streamed."""

import csv
import datetime
import json
from collections.abc import Iterator

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.presentation import EXPORT_FIELDS, event_changes, event_record
from apps.audit.selectors import audit_event_list
from apps.common.paging import capped_page
from apps.connectors.selectors import connector_ids_by_name_part
from apps.console.decorators import console_view
from apps.console.forms.audit import AuditFilterForm
from apps.console.selectors import audit_target_urls
from apps.directory.roles import Capability
from apps.directory.selectors import group_ids_by_name_part, user_ids_by_username_part

# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# How many accounts (or groups, or connectors) a name filter stands for: a part of a name that
# matches more is too vague to be useful, and the list goes into an index lookup.
NAMED_MATCHES = 100


def _actor_filter(text: str) -> dict:
    """The actors whose username contains `text`, by id (the actor index serves it); when no account
    matches (the system, a token, a deleted account), the events whose actor label is exactly `text`."""
    ids = user_ids_by_username_part(text, limit=NAMED_MATCHES)
    return {"actor_ids": ids} if ids else {"actor_label_exact": text}


def _target_filter(text: str) -> dict:
    """Users, groups and connectors whose name contains `text`, by id (the target index serves it);
    when nothing matches, the events whose target label is exactly `text`."""
    targets = {
        "directory.user": user_ids_by_username_part(text, limit=NAMED_MATCHES),
        "directory.group": group_ids_by_name_part(text, limit=NAMED_MATCHES),
        "connectors.connector": connector_ids_by_name_part(text, limit=NAMED_MATCHES),
    }
    targets = {kind: ids for kind, ids in targets.items() if ids}
    return {"targets": targets} if targets else {"target_label_exact": text}


def _filtered_events(form: AuditFilterForm) -> QuerySet[AuditEvent]:
    if not form.is_valid():
        return AuditEvent.objects.none()
    data = form.cleaned_data

    def day_start(day: datetime.date | None) -> datetime.datetime | None:
        if day is None:
            return None
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))

    until = data["until"] + datetime.timedelta(days=1) if data["until"] else None
    names = {
        **(_actor_filter(data["actor"]) if data["actor"] else {}),
        **(_target_filter(data["target"]) if data["target"] else {}),
    }
    exact_actor, exact_target = names.pop("actor_label_exact", None), names.pop("target_label_exact", None)
    events = audit_event_list(
        action=data["action"] or None, since=day_start(data["since"]), until=day_start(until), **names
    )
    if exact_actor:
        events = events.filter(actor_label__iexact=exact_actor)
    if exact_target:
        events = events.filter(target_label__iexact=exact_target)
    return events.order_by("-created", "-id")


@console_view(Capability.VIEW_AUDIT)
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    page = capped_page(_filtered_events(form), request.GET.get("page"), settings.CONSOLE_PAGE_SIZE)
    events = list(page.object_list)
    links = audit_target_urls(events)
    for event in events:
        event.changes = event_changes(event)
        event.target_url = links.get(event.pk, "")
    filtered = any(request.GET.get(name) for name in form.fields)
    context = {
        "nav": "audit", "form": form, "page_obj": page, "events": events, "filtered": filtered,
        "retention_days": settings.AUDIT_RETENTION_DAYS,
    }  # fmt: skip
    return render(request, "console/audit/list.html", context, status=400 if form.errors else 200)


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events.iterator(chunk_size=2000):
        record = event_record(event, nested=False)
        yield writer.writerow([_csv_cell(record[name]) for name in EXPORT_FIELDS])


def _json_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    for event in events.iterator(chunk_size=2000):
        yield json.dumps(event_record(event, nested=True), ensure_ascii=False, default=str) + "\n"


def _in_one_transaction(rows: Iterator[str]) -> Iterator[str]:
    """Stream from inside a transaction: outside one, Django declares its server-side cursor WITH
    HOLD, and PostgreSQL then materializes every matching row before sending the first (minutes
    of silence for ten million events, and a proxy or gunicorn gives up). Inside, rows flow as
    they are read, and memory stays flat either way (bench/scale_audit.py)."""
    with transaction.atomic():
        yield from rows


_EXPORTS = {
    "csv": (_csv_rows, "text/csv; charset=utf-8"),
    "jsonl": (_json_lines, "application/x-ndjson; charset=utf-8"),
}


@console_view(Capability.VIEW_AUDIT)
def audit_export(request: HttpRequest, fmt: str = "csv") -> HttpResponse:
    """The filtered log as CSV or JSON Lines, streamed in chunks: memory stays flat whatever its size."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "console/audit/list.html", {"nav": "audit", "form": form, "events": []}, status=400)
    rows, content_type = _EXPORTS[fmt]
    response = StreamingHttpResponse(_in_one_transaction(rows(_filtered_events(form))), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    return response


urlpatterns = [
    path("", audit_list, name="audit_list"),
    path("export.csv", audit_export, {"fmt": "csv"}, name="audit_export"),
    path("export.jsonl", audit_export, {"fmt": "jsonl"}, name="audit_export_jsonl"),
]
