"""Groups: the list with member counts, one group's members, adding people by search or CSV file."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.common.errors import ApplicationError
from apps.connectors.selectors import assignment_counts_by_group
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors, save_changed_fields
from apps.console.forms.groups import GroupFilterForm, GroupForm, MemberImportForm
from apps.directory import imports
from apps.directory import selectors as directory_selectors
from apps.directory import services as directory
from apps.directory.models import Group, GroupImportJob, User
from apps.directory.roles import Capability, administrators_beyond_reach
from apps.directory.rules.selectors import group_rule
from apps.provisioning.impacts import group_removal_impacts
from apps.scim_server import selectors as scim_selectors

# Matches offered by the add-member search box.
MEMBER_SEARCH_LIMIT = 10
MEMBER_SEARCH_MIN_LENGTH = 2


def _detail(group: Group) -> HttpResponse:
    return redirect("console:group_detail", pk=group.pk)


@console_view(Capability.VIEW_DIRECTORY)
@require_GET
def group_list(request: HttpRequest) -> HttpResponse:
    form = GroupFilterForm(request.GET)
    search = form.cleaned_data["q"] if form.is_valid() else ""
    page = directory_selectors.group_page(
        search=search, number=request.GET.get("page"), size=settings.CONSOLE_PAGE_SIZE
    )
    connectors = assignment_counts_by_group([group.pk for group in page.object_list])
    for group in page.object_list:
        group.connector_count = connectors.get(group.pk, 0)
    context = {"nav": "groups", "form": form, "page_obj": page, "groups": page.object_list, "filtered": bool(search)}
    return render(request, "console/groups/list.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def group_create(request: HttpRequest) -> HttpResponse:
    form = GroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = directory.group_create(actor=request.user, **form.cleaned_data)
        except (ValidationError, ApplicationError) as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Group {group.name} was created. Add its members below.")
            return _detail(group)
    status = 400 if form.errors else 200
    return render(request, "console/groups/form.html", {"nav": "groups", "form": form, "creating": True}, status=status)


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def group_edit(request: HttpRequest, pk) -> HttpResponse:
    group = get_object_or_404(Group, pk=pk)
    initial = {name: getattr(group, name) for name in GroupForm.base_fields}
    form = GroupForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = save_changed_fields(
            form, initial, lambda **changes: directory.group_update(actor=request.user, group=group, **changes)
        )
        if changed is not None:
            messages.success(request, f"Group {group.name} was saved." if changed else "Nothing changed.")
            return _detail(group)
    context = {"nav": "groups", "form": form, "group": group, "creating": False}
    return render(request, "console/groups/form.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def group_delete(request: HttpRequest, pk) -> HttpResponse:
    """GET names who loses which app and what each app is told; POST deletes."""
    group = get_object_or_404(Group, pk=pk)
    if request.method == "POST":
        name = group.name
        try:
            directory.group_delete(actor=request.user, group=group)
        except ApplicationError as exc:  # administrators beyond reach, a token scoped to it
            messages.error(request, exc.message)
            return _detail(group)
        messages.success(request, f"Group {name} was deleted.")
        return redirect("console:group_list")
    context = {
        "nav": "groups",
        "group": group,
        "member_count": group.memberships.count(),
        "impacts": group_removal_impacts(group),
        "beyond_reach": administrators_beyond_reach(request.user, group),
        "scoped_tokens": scim_selectors.tokens_scoped_to(group),
    }
    return render(request, "console/groups/delete.html", context)


def _detail_context(group: Group, *, page_number, import_form: MemberImportForm) -> dict:
    members = directory_selectors.group_members(group).only(
        "id", "username", "first_name", "last_name", "display_name", "email", "status"
    )
    page = Paginator(members, settings.CONSOLE_PAGE_SIZE).get_page(page_number)
    return {
        "nav": "groups",
        "group": group,
        "page_obj": page,
        "members": page.object_list,
        "impacts": group_removal_impacts(group),
        "import_job": directory_selectors.group_import_latest(group),
        "import_form": import_form,
        # Rule-based: the page shows the rule instead of the member editor.
        "rule": group_rule(group),
    }


@console_view(Capability.VIEW_DIRECTORY)
@require_GET
def group_detail(request: HttpRequest, pk) -> HttpResponse:
    group = get_object_or_404(Group, pk=pk)
    context = _detail_context(group, page_number=request.GET.get("page"), import_form=MemberImportForm())
    return render(request, "console/groups/detail.html", context)


@console_view(Capability.MANAGE_DIRECTORY)
@require_GET
def group_member_search(request: HttpRequest, pk) -> HttpResponse:
    """The add-member search box's matches (an htmx partial): people who are not members yet."""
    group = get_object_or_404(Group, pk=pk)
    query = request.GET.get("q", "").strip()[:150]
    matches: list[User] = []
    if len(query) >= MEMBER_SEARCH_MIN_LENGTH:
        matches = list(
            directory_selectors.user_list(search=query)
            .exclude(memberships__group=group)
            .prefetch_related(None)  # the matches show no groups
            .select_related(None)  # nor managers
            .only("id", "username", "first_name", "last_name", "display_name", "email")[:MEMBER_SEARCH_LIMIT]
        )
    context = {"group": group, "query": query, "matches": matches, "min_length": MEMBER_SEARCH_MIN_LENGTH}
    return render(request, "console/groups/_member_search.html", context)


def _member_from_post(request: HttpRequest) -> User | None:
    return directory_selectors.user_get_or_none(request.POST.get("user"))


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def group_member_add(request: HttpRequest, pk) -> HttpResponse:
    return _change_membership(request, pk, directory.group_add_members, "was added to", "was already in")


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def group_member_remove(request: HttpRequest, pk) -> HttpResponse:
    return _change_membership(request, pk, directory.group_remove_members, "was removed from", "was not in")


def _change_membership(request: HttpRequest, pk, change, done: str, unchanged: str) -> HttpResponse:
    """Add or remove the posted user through `change` (a directory service) and say what happened."""
    group = get_object_or_404(Group, pk=pk)
    account = _member_from_post(request)
    if account is None:
        messages.error(request, "That user no longer exists.")
        return _detail(group)
    try:
        changed = change(actor=request.user, group=group, users=[account])
    except ApplicationError as exc:  # an administrator beyond reach, or a rule-based group
        messages.error(request, exc.message)
        return _detail(group)
    if changed:
        messages.success(request, f"{account.username} {done} {group.name}.")
    else:
        messages.info(request, f"{account.username} {unchanged} {group.name}.")
    return _detail(group)


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def group_import(request: HttpRequest, pk) -> HttpResponse:
    """Start a bulk add from a CSV file; the group's page then shows its progress."""
    group = get_object_or_404(Group, pk=pk)
    form = MemberImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = imports.group_import_start(
                actor=request.user, group=group, filename=upload.name, content=upload.read()
            )
        except (ValidationError, ApplicationError) as error:  # a bad file, or a rule-based group
            add_service_errors(form, error)
        else:
            messages.success(
                request, f"Importing {job.total_rows} row{'s' if job.total_rows != 1 else ''} of {job.filename}."
            )
            return _detail(group)
    context = _detail_context(group, page_number=1, import_form=form)
    return render(request, "console/groups/detail.html", context, status=400)


@console_view(Capability.VIEW_DIRECTORY)
@require_GET
def group_import_status(request: HttpRequest, pk, job_pk) -> HttpResponse:
    """The progress partial the group's page polls every second until the import is done."""
    job = get_object_or_404(GroupImportJob.objects.select_related("group"), pk=job_pk, group_id=pk)
    if not request.htmx:
        return _detail(job.group)
    return render(request, "console/groups/_import_status.html", {"job": job, "group": job.group})


urlpatterns = [
    path("", group_list, name="group_list"),
    path("new/", group_create, name="group_create"),
    path("<uuid:pk>/", group_detail, name="group_detail"),
    path("<uuid:pk>/edit/", group_edit, name="group_edit"),
    path("<uuid:pk>/delete/", group_delete, name="group_delete"),
    path("<uuid:pk>/members/search/", group_member_search, name="group_member_search"),
    path("<uuid:pk>/members/add/", group_member_add, name="group_member_add"),
    path("<uuid:pk>/members/remove/", group_member_remove, name="group_member_remove"),
    path("<uuid:pk>/members/import/", group_import, name="group_import"),
    path("<uuid:pk>/members/import/<uuid:job_pk>/", group_import_status, name="group_import_status"),
]
