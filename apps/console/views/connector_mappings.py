"""A connector's Attribute mapping tab: its SCIM user, SCIM group and SAML tables in one form.

One form, so that nothing typed is dropped: "Save" (in the wizard "Save and continue") saves every
table at once, all or nothing; adding a row or resetting a table to the template's defaults shows
the other tables as they were typed, still unsaved. Leaving the page some other way with unsaved
changes asks first (static/console/console.js, `data-unsaved-guard`).
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme

from apps.connectors import selectors, services
from apps.connectors.catalog import SEED_SCIM_GROUP_MAPPINGS, SEED_SCIM_USER_MAPPINGS, get_template
from apps.connectors.models import Connector, MappingKind
from apps.console.decorators import console_view
from apps.console.forms import connectors as forms
from apps.console.views.connector_steps import MAPPINGS, after_save, in_wizard, layout_context
from apps.console.views.connectors import connector_or_404, form_count, require_manage, service_error_message
from apps.directory.roles import Capability

_ROW_KEYS = ("source", "target", "name_format")


def _mapping_kinds(connector: Connector) -> list[str]:
    kinds = []
    if connector.has_provisioning:
        kinds += [MappingKind.SCIM_USER, MappingKind.SCIM_GROUP]
    if connector.has_sso:
        kinds.append(MappingKind.SAML)
    if connector.has_oidc:
        kinds.append(MappingKind.OIDC)
    return kinds


def template_default_rows(connector: Connector, kind: str) -> list[dict]:
    """The catalog template's rows for `kind`; the seed's SCIM attributes when it has none."""
    spec = get_template(connector.template)
    rows = [
        {"source": row.source, "target": row.target, "name_format": row.name_format}
        for row in (spec.mappings if spec else ())
        if row.kind == kind
    ]
    if not rows and kind == MappingKind.SCIM_USER:
        rows = [{"source": s, "target": t, "name_format": ""} for s, t in SEED_SCIM_USER_MAPPINGS]
    if not rows and kind == MappingKind.SCIM_GROUP:
        rows = [{"source": s, "target": t, "name_format": ""} for s, t in SEED_SCIM_GROUP_MAPPINGS]
    return rows


def _saved_rows(connector: Connector, kind: str) -> list[dict]:
    return forms.mapping_initial(selectors.mapping_list(connector, kind))


def _typed_rows(request: HttpRequest, kind: str) -> list[dict]:
    """The rows of a table as posted, without the ones ticked for removal (to show again, unsaved)."""
    return [
        {key: request.POST.get(f"{kind}-{n}-{key}", "") for key in _ROW_KEYS}
        for n in range(form_count(request, kind, 199))
        if not request.POST.get(f"{kind}-{n}-DELETE")
    ]


def _table(kind: str, formset) -> dict:
    title = forms.MAPPING_TABLES[kind][0]
    properties = selectors.mapping_properties(kind)
    formset.title = title  # names its rows in the error summary
    return {"kind": kind, "title": title, "properties": properties, "formset": formset, "saml": kind == "saml"}


def _unsaved_formset(kind: str, rows: list[dict]):
    return forms.MappingFormSet(prefix=kind, initial=rows)


def _put_mapping_errors(formset, error: ValidationError, origins: list[int]) -> None:
    other = []
    for name, texts in error.message_dict.items():
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "rows" and parts[1].isdigit() and int(parts[1]) < len(origins):
            row_form = formset.forms[origins[int(parts[1])]]
            field = parts[2] if parts[2] in row_form.fields else None
            for text in texts:
                row_form.add_error(field, text)
        else:
            other.extend(texts)
    if other:
        formset._non_form_errors = formset.error_class(other)


class _RolledBack(Exception):
    """A table was refused: undo the tables saved before it."""


def _save_tables(request: HttpRequest, connector: Connector, formsets: dict) -> bool:
    """Save every posted table in one transaction; False (and errors on the rows) if any is refused."""
    try:
        with transaction.atomic():
            refused = False
            for kind, formset in formsets.items():
                rows, origins = forms.mapping_rows(formset)
                try:
                    services.mappings_replace(actor=request.user, connector=connector, kind=kind, rows=rows)
                except ValidationError as error:
                    _put_mapping_errors(formset, error, origins)
                    refused = True
            if refused:
                raise _RolledBack
    except _RolledBack:
        return False
    return True


def _parse_action(request: HttpRequest, kinds: list[str]) -> tuple[str, str | None]:
    """("save" | "add" | "reset", the table it is about). "add:scim_user", or "add" with `kind`."""
    verb, _, kind = request.POST.get("action", "save").partition(":")
    kind = kind or request.POST.get("kind") or None
    if verb not in ("save", "add", "reset"):
        verb = "save"
    if (verb != "save" or kind is not None) and kind not in kinds:
        raise Http404("No such mapping table.")
    return verb, kind


def _after_saving(request: HttpRequest, connector: Connector) -> HttpResponse:
    """The wizard's next step, the page the admin was leaving when asked to save, or this page."""
    leaving_to = request.POST.get("next", "")
    if leaving_to.startswith("/console/") and url_has_allowed_host_and_scheme(leaving_to, allowed_hosts=None):
        return HttpResponseRedirect(leaving_to)
    if in_wizard(request):
        return after_save(request, connector, MAPPINGS)
    return HttpResponseRedirect(request.get_full_path())


@console_view(Capability.VIEW_CONNECTORS)
def connector_mappings(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug)
    kinds = _mapping_kinds(connector)
    if not kinds:
        raise Http404("A bookmark sends no attributes.")
    shown: dict = {}  # kind -> formset, for the tables not shown as saved
    status, unsaved = 200, False
    if request.method == "POST":
        require_manage(request)
        verb, kind = _parse_action(request, kinds)
        posted = [each for each in kinds if f"{each}-TOTAL_FORMS" in request.POST]
        if verb == "save":
            formsets = {each: forms.MappingFormSet(request.POST, prefix=each) for each in posted}
            if all(formset.is_valid() for formset in formsets.values()) and _save_tables(request, connector, formsets):
                messages.success(request, "Attribute mapping saved.")
                return _after_saving(request, connector)
            shown, status = formsets, 400
        else:
            if verb == "reset":
                title = forms.MAPPING_TABLES[kind][0]
                try:
                    services.mappings_replace(
                        actor=request.user, connector=connector, kind=kind, rows=template_default_rows(connector, kind)
                    )
                except ValidationError as error:
                    messages.error(request, service_error_message(error))
                else:
                    messages.success(request, f"{title} were reset to the defaults and saved.")
                if posted == [kind] or not posted:
                    return HttpResponseRedirect(request.get_full_path())
            for each in posted:
                if verb == "reset" and each == kind:
                    continue
                rows = _typed_rows(request, each)
                if verb == "add" and each == kind:
                    rows.append({})
                shown[each] = _unsaved_formset(each, rows)
                unsaved = unsaved or rows != _saved_rows(connector, each)
    tables = [
        _table(each, shown[each] if each in shown else _unsaved_formset(each, _saved_rows(connector, each)))
        for each in kinds
    ]
    context = {
        **layout_context(request, connector, "mappings"),
        "tables": tables,
        "unsaved": unsaved or status == 400,  # what is shown differs from what is saved
        "unsaved_note": unsaved and status == 200,
    }
    return render(request, "console/connectors/mappings.html", context, status=status)


urlpatterns = [path("<slug:slug>/mappings/", connector_mappings, name="connector_mappings")]
