"""A connector's Assignments tab: who is assigned, and the directory's groups and users to assign.

Groups (with their member counts) and users are listed page by page without typing anything; a
search narrows both lists. Each list is one page of a selector in apps.connectors.selectors, read in
a fixed number of queries.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse

from apps.connectors import selectors, services
from apps.connectors.models import Assignment, Connector
from apps.console.decorators import console_view
from apps.console.forms import connectors as forms
from apps.console.views.connector_steps import in_wizard, layout_context
from apps.console.views.connectors import connector_or_404, require_manage, scope_size, service_error_message
from apps.directory.models import Group, User
from apps.directory.roles import Capability, has_capability

# The lists to pick from are shorter than the console's other lists: they sit side by side.
BROWSE_PAGE_SIZE = 20


def _browse_context(request: HttpRequest, connector: Connector, query: str) -> dict:
    size = min(BROWSE_PAGE_SIZE, settings.CONSOLE_PAGE_SIZE)
    return {
        "connector": connector,
        "query": query,
        "groups_page": selectors.assignable_groups_page(
            connector, search=query, number=request.GET.get("gpage"), size=size
        ),
        "users_page": selectors.assignable_users_page(
            connector, search=query, number=request.GET.get("upage"), size=size
        ),
        "can_manage": has_capability(request.user, Capability.MANAGE_CONNECTORS),
        "wizard": in_wizard(request),
    }


def _assign(request: HttpRequest, connector: Connector) -> HttpResponse | None:
    """Assign the posted user or group; None when refused (the reason is in the messages)."""
    add_form = forms.AssignmentAddForm(request.POST)
    if not add_form.is_valid():
        messages.error(request, "Choose a user or a group to assign.")
        return None
    user_id, group_id = add_form.cleaned_data["user"], add_form.cleaned_data["group"]
    user = get_object_or_404(User, pk=user_id) if user_id else None
    group = get_object_or_404(Group, pk=group_id) if group_id else None
    try:
        services.assignment_create(actor=request.user, connector=connector, user=user, group=group)
    except ValidationError as error:
        messages.error(request, service_error_message(error))
        return None
    messages.success(request, f"{user.username if user else group.name} is now assigned.")
    return HttpResponseRedirect(request.get_full_path())


@console_view(Capability.VIEW_CONNECTORS)
def connector_assignments(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug)
    search_form = forms.AssignmentSearchForm(request.GET)
    query = search_form.cleaned_data["q"].strip() if search_form.is_valid() else ""
    status = 200
    if request.method == "POST":
        require_manage(request)
        response = _assign(request, connector)
        if response is not None:
            return response
        status = 400
    browse = _browse_context(request, connector, query)
    if request.htmx and request.method == "GET" and not request.htmx.history_restore_request:
        return render(request, "console/connectors/_assignment_search.html", browse)
    assignments = selectors.assignment_list(connector).order_by("group__name", "user__username", "id")
    page = Paginator(assignments, settings.CONSOLE_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        **layout_context(request, connector, "assignments"),
        **browse,
        "search_form": search_form,
        "page_obj": page,
        "assignments": page.object_list,
        "users_in_scope": scope_size(connector),
    }
    return render(request, "console/connectors/assignments.html", context, status=status)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_assignment_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    connector = connector_or_404(slug)
    assignment = get_object_or_404(Assignment.objects.select_related("user", "group"), pk=pk, connector=connector)
    target = reverse("console:connector_assignments", args=[slug])
    if request.method != "POST":
        return HttpResponseRedirect(target)
    name = assignment.user.username if assignment.user else assignment.group.name
    services.assignment_delete(actor=request.user, assignment=assignment)
    messages.success(request, f"{name} is no longer assigned; whoever lost access is deprovisioned from the app.")
    return HttpResponseRedirect(f"{target}?wizard=1" if in_wizard(request) else target)


urlpatterns = [
    path("<slug:slug>/assignments/", connector_assignments, name="connector_assignments"),
    path("<slug:slug>/assignments/<int:pk>/remove/", connector_assignment_remove, name="connector_assignment_remove"),
]
