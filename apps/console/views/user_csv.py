"""Users as CSV in the console: the export of the list as filtered, and the import page (both call
apps.directory.user_csv, as the admin API does)."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from apps.connectors.selectors import connector_choices, users_filtered
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms.user_csv import UserImportForm
from apps.console.forms.users import UserFilterForm
from apps.directory import selectors as directory_selectors
from apps.directory.roles import Capability
from apps.directory.user_csv import USER_CSV_MAX_ROWS, user_csv_import, user_csv_lines


@console_view(Capability.VIEW_DIRECTORY)
@require_GET
def user_export(request: HttpRequest) -> HttpResponse:
    """The users the list's filters select, every attribute, streamed (memory stays flat)."""
    form = UserFilterForm(request.GET, groups=directory_selectors.group_choices(), connectors=connector_choices())
    data = form.cleaned_data if form.is_valid() else {}
    users = users_filtered(
        search=data.get("q", ""),
        status=data.get("status", ""),
        group=data.get("group", ""),
        connector=data.get("connector", ""),
    )
    response = StreamingHttpResponse(user_csv_lines(users), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="users-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def user_import(request: HttpRequest) -> HttpResponse:
    form = UserImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        try:
            report = user_csv_import(actor=request.user, content=form.cleaned_data["file"].read())
        except ValidationError as exc:
            add_service_errors(form, exc)
    context = {"nav": "users", "form": form, "report": report, "max_rows": USER_CSV_MAX_ROWS}
    return render(request, "console/users/import.html", context, status=400 if form.errors else 200)


urlpatterns = [
    path("export.csv", user_export, name="user_export"),
    path("import/", user_import, name="user_import"),
]
