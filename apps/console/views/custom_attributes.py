"""Custom attributes: the attributes admins add to every user's profile (list, create, edit, delete).

Everyone who sees the directory sees the definitions; defining them takes MANAGE_PROFILE_SCHEMA
(admins and super-admins), since mappings, group rules and SCIM clients depend on them.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods

from apps.common.errors import ApplicationError
from apps.console import selectors
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms.custom_attributes import CustomAttributeForm
from apps.directory import custom_attributes as services
from apps.directory.models import CustomAttribute
from apps.directory.roles import Capability

NAV = "custom_attributes"


@console_view(Capability.VIEW_DIRECTORY)
@require_GET
def custom_attribute_list(request: HttpRequest) -> HttpResponse:
    context = {"nav": NAV, "rows": selectors.custom_attributes_with_usage()}
    return render(request, "console/custom_attributes/list.html", context)


def _save(request: HttpRequest, form: CustomAttributeForm, definition: CustomAttribute | None) -> bool:
    data = {key: value for key, value in form.cleaned_data.items() if key != "name" or definition is None}
    try:
        if definition is None:
            saved = services.custom_attribute_create(actor=request.user, **data)
        else:
            saved = services.custom_attribute_update(actor=request.user, definition=definition, **data)
    except (ValidationError, ApplicationError) as error:
        add_service_errors(form, error)
        return False
    messages.success(request, f"The custom attribute {saved.name} was saved.")
    return True


@console_view(Capability.MANAGE_PROFILE_SCHEMA)
@require_http_methods(["GET", "POST"])
def custom_attribute_create(request: HttpRequest) -> HttpResponse:
    form = CustomAttributeForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and _save(request, form, None):
        return redirect("console:custom_attribute_list")
    context = {"nav": NAV, "form": form, "definition": None}
    return render(request, "console/custom_attributes/form.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_PROFILE_SCHEMA)
@require_http_methods(["GET", "POST"])
def custom_attribute_edit(request: HttpRequest, pk) -> HttpResponse:
    definition = get_object_or_404(CustomAttribute, pk=pk)
    initial = {
        "name": definition.name,
        "label": definition.label,
        "description": definition.description,
        "type": definition.type,
        "choices": "\n".join(definition.choices or []),
        "multi_valued": definition.multi_valued,
        "required": definition.required,
    }
    form = CustomAttributeForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid() and _save(request, form, definition):
        return redirect("console:custom_attribute_list")
    context = {"nav": NAV, "form": form, "definition": definition}
    return render(request, "console/custom_attributes/form.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_PROFILE_SCHEMA)
@require_http_methods(["GET", "POST"])
def custom_attribute_delete(request: HttpRequest, pk) -> HttpResponse:
    """GET says how many users lose their value; POST deletes."""
    definition = get_object_or_404(CustomAttribute, pk=pk)
    if request.method == "POST":
        removed = services.custom_attribute_delete(actor=request.user, definition=definition)
        messages.success(
            request, f"The custom attribute {definition.name} was deleted, with the values of {removed} user(s)."
        )
        return redirect("console:custom_attribute_list")
    context = {"nav": NAV, "definition": definition, "holders": selectors.custom_attribute_holder_count(definition)}
    return render(request, "console/custom_attributes/delete.html", context)


urlpatterns = [
    path("", custom_attribute_list, name="custom_attribute_list"),
    path("new/", custom_attribute_create, name="custom_attribute_create"),
    path("<uuid:pk>/edit/", custom_attribute_edit, name="custom_attribute_edit"),
    path("<uuid:pk>/delete/", custom_attribute_delete, name="custom_attribute_delete"),
]
