"""Console pages: a connector's Provisioning tab: state per object, deliveries, sync, preview, holds.

Reads come from apps.provisioning.selectors and the dry-run preview (apps.provisioning.preview); every
action goes through apps.provisioning.services with the acting admin, which audits it.
"""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, re_path, reverse

from apps.common.errors import ApplicationError
from apps.connectors.models import Connector
from apps.console.decorators import console_view
from apps.console.forms.connectors import RemoteObjectFilterForm
from apps.console.views.connector_steps import layout_context
from apps.console.views.connectors import connector_or_404
from apps.directory.models import User
from apps.directory.roles import Capability
from apps.provisioning import selectors, services
from apps.provisioning.models import DeprovisionHold, HoldStatus
from apps.provisioning.preview import preview_sync

DELIVERY_PAGE_SIZE = 25


def _counts_context(connector: Connector) -> dict:
    """The one state of the connector's provisioning and its counts (selectors.provisioning_state)."""
    state = selectors.provisioning_state(connector)
    progress = selectors.sync_progress(connector, state)
    return {
        "connector": connector,
        "state": state,
        "progress": progress,
        "total": progress.total,
        "done": progress.done,
    }


@console_view(Capability.VIEW_CONNECTORS)
def connector_provisioning(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="provisioning")
    filters = RemoteObjectFilterForm(request.GET)
    status = object_type = None
    if filters.is_valid():
        status = filters.cleaned_data["status"] or None
        object_type = filters.cleaned_data["object_type"] or None
    objects = selectors.remote_object_list(connector, status=status, object_type=object_type)
    page = Paginator(objects, settings.CONSOLE_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = selectors.with_names(list(page.object_list))
    rows = [{"object": remote, "hint": selectors.explain_error(remote.last_error)} for remote in page.object_list]
    deliveries = Paginator(selectors.delivery_list(connector).defer("request_body"), DELIVERY_PAGE_SIZE).get_page(
        request.GET.get("dpage")
    )
    holds = list(selectors.pending_hold_list(connector))
    counts = _counts_context(connector)
    # Objects never sent yet have a change waiting but no link row to list: say so, not a smaller number.
    unlisted = counts["state"].waiting - page.paginator.count if status == "waiting" and not object_type else 0
    context = {
        **layout_context(request, connector, "provisioning"),
        **counts,
        "unlisted_waiting": max(unlisted, 0),
        "filters": filters,
        "filtered": bool(status or object_type),
        "page_obj": page,
        "rows": rows,
        "deliveries": deliveries,
        "delivery_rows": [
            {"delivery": delivery, "hint": selectors.explain_error(delivery.error)}
            for delivery in deliveries.object_list
        ],
        "holds": holds,
        "provisioning": connector.provisioning,
    }
    return render(request, "console/connectors/provisioning.html", context)


@console_view(Capability.VIEW_CONNECTORS)
def connector_provisioning_counts(request: HttpRequest, slug: str) -> HttpResponse:
    """The counts alone, polled every 2 s by htmx while anything is pending."""
    connector = connector_or_404(slug, needs="provisioning")
    return render(request, "console/connectors/_provisioning_counts.html", _counts_context(connector))


def _shown(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def flatten(resource: dict, prefix: str = "") -> list[tuple[str, object]]:
    """A SCIM resource as (path, value) pairs a person can read: name.givenName, emails[work].value."""
    pairs: list[tuple[str, object]] = []
    for name, value in resource.items():
        if name == "schemas":
            continue
        leaf = f"{prefix}{name}"
        if isinstance(value, dict):
            pairs.extend(flatten(value, f"{leaf}."))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for position, item in enumerate(value):
                label = item.get("type") or str(position)
                pairs.extend(flatten({k: v for k, v in item.items() if k != "type"}, f"{leaf}[{label}]."))
        else:
            pairs.append((leaf, _shown(value)))
    return pairs


def attribute_changes(changed: dict) -> list[tuple[str, object, object]]:
    """(path, before, after) for each leaf that differs, from the diff's {attribute: {from, to}}."""
    rows = []
    for name, change in changed.items():
        before = dict(flatten({name: change["from"]})) if change.get("from") is not None else {}
        after = dict(flatten({name: change["to"]})) if change.get("to") is not None else {}
        for leaf in dict.fromkeys([*after, *before]):
            if before.get(leaf) != after.get(leaf):
                rows.append((leaf, before.get(leaf), after.get(leaf)))
    return rows


def _usernames(ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return {str(pk): username for pk, username in User.objects.filter(pk__in=ids).values_list("pk", "username")}


@console_view(Capability.VIEW_CONNECTORS)
def connector_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """The dry run: what a sync would send, a page of objects at a time; nothing is sent."""
    connector = connector_or_404(slug, needs="provisioning")
    page = request.GET.get("page", "1")
    preview = preview_sync(connector, page=int(page) if page.isdigit() else 1)
    member_ids = {member for change in preview.membership_changes for member in (*change["add"], *change["remove"])}
    names = _usernames(member_ids)
    membership_changes = [
        {
            **change,
            "add_names": [names.get(member, member) for member in change["add"]],
            "remove_names": [names.get(member, member) for member in change["remove"]],
        }
        for change in preview.membership_changes
    ]
    creates = [{"userName": entry["userName"], "attributes": flatten(entry["resource"])} for entry in preview.creates]
    updates = [
        {"userName": entry["userName"], "changes": attribute_changes(entry["changed"])} for entry in preview.updates
    ]
    summary = preview.as_dict()["summary"]
    context = {
        **layout_context(request, connector, "provisioning"),
        "preview": preview,
        "creates": creates,
        "updates": updates,
        "membership_changes": membership_changes,
        "summary": summary,
        "nothing": preview.sends_nothing,
        "page": preview.page,
    }
    return render(request, "console/connectors/preview.html", context)


def _back(slug: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console:connector_provisioning", args=[slug]))


def _post_only(request: HttpRequest, slug: str) -> HttpResponse | None:
    return None if request.method == "POST" else _back(slug)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_sync(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="provisioning")
    if (redirect := _post_only(request, slug)) is not None:
        return redirect
    count = services.connector_sync(actor=request.user, connector=connector)
    if count and selectors.full_sync_still_queuing(connector):
        messages.success(
            request,
            f"Sync started: the first {count:,} objects are being checked and sent if they changed; the rest are "
            "being queued in the background (the counts below grow until they are).",
        )
    elif count:
        messages.success(request, f"Sync started: {count} objects are being checked and sent if they changed.")
    else:
        messages.warning(
            request, "Nothing was queued: the connector or its Identity Management is off, or nobody is assigned."
        )
    return _back(slug)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_retry(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="provisioning")
    if (redirect := _post_only(request, slug)) is not None:
        return redirect
    count = services.connector_retry_failed(actor=request.user, connector=connector)
    messages.success(request, f"{count} failed or waiting objects will be tried again now.")
    return _back(slug)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_pause(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="provisioning")
    if (redirect := _post_only(request, slug)) is not None:
        return redirect
    services.connector_pause(actor=request.user, connector=connector, reason=f"Paused by {request.user.username}")
    messages.success(request, "Provisioning is paused: changes wait until you resume it.")
    return _back(slug)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_resume(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="provisioning")
    if (redirect := _post_only(request, slug)) is not None:
        return redirect
    try:
        services.connector_resume(actor=request.user, connector=connector)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Provisioning resumed: waiting changes are being sent.")
    return _back(slug)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_hold_decide(request: HttpRequest, slug: str, hold_id: str, decision: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="provisioning")
    if (redirect := _post_only(request, slug)) is not None:
        return redirect
    hold = get_object_or_404(DeprovisionHold, pk=int(hold_id), connector=connector)
    if hold.status != HoldStatus.PENDING:
        messages.warning(request, f"This batch was already {hold.get_status_display().lower()}.")
        return _back(slug)
    count = len(hold.object_ids) + len(hold.remote_ids)
    if decision == "approve":
        services.hold_approve(actor=request.user, hold=hold)
        messages.success(request, f"Approved: {count} users are being deprovisioned from {connector.name}.")
    else:
        services.hold_cancel(actor=request.user, hold=hold)
        messages.success(request, f"Cancelled: the {count} users stay in {connector.name}.")
    return _back(slug)


urlpatterns = [
    path("<slug:slug>/provisioning/", connector_provisioning, name="connector_provisioning"),
    path("<slug:slug>/provisioning/counts/", connector_provisioning_counts, name="connector_provisioning_counts"),
    path("<slug:slug>/provisioning/preview/", connector_preview, name="connector_preview"),
    path("<slug:slug>/provisioning/sync/", connector_sync, name="connector_sync"),
    path("<slug:slug>/provisioning/retry/", connector_retry, name="connector_retry"),
    path("<slug:slug>/provisioning/pause/", connector_pause, name="connector_pause"),
    path("<slug:slug>/provisioning/resume/", connector_resume, name="connector_resume"),
    re_path(
        r"^(?P<slug>[-a-zA-Z0-9_]+)/provisioning/holds/(?P<hold_id>[0-9]+)/(?P<decision>approve|cancel)/$",
        connector_hold_decide,
        name="connector_hold_decide",
    ),
]
