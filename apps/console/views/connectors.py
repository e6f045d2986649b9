"""Console pages: the connector list, the catalog, the creation wizard and each connector's tabs.

Creating a connector walks the seed's flow as steps (General info → SSO → Identity Management →
Attribute mapping → Assignments → Activate); afterwards each step is a tab of the connector's
page. The same view serves a step and its tab: `?wizard=1` shows the steps and moves on to the
next one after saving. Every change goes through apps.connectors.services with the acting admin.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.common.errors import ApplicationError
from apps.connectors import idp_urls, metadata_refresh, selectors, services
from apps.connectors.catalog import get_template, load_catalog
from apps.connectors.checks import connector_checks
from apps.connectors.models import Connector, ConnectorKind
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms import connectors as forms
from apps.console.views.connector_oidc_secret import oidc_secret_page
from apps.console.views.connector_steps import (
    ACTIVATE,
    ASSIGNMENTS,
    GENERAL,
    IDENTITY,
    MAPPINGS,
    OIDC,
    SSO,
    after_save,
    in_wizard,
    layout_context,
    steps_for,
)
from apps.directory.roles import Capability, has_capability
from apps.provisioning import selectors as provisioning_selectors
from apps.provisioning.probe import connection_test


def connector_or_404(slug: str, *, needs: str = "") -> Connector:
    """The connector at `slug`; with `needs` ("sso" or "provisioning"), only one that has it."""
    connector = selectors.connector_get_by_slug(slug)
    if connector is None:
        raise Http404("No such connector.")
    if needs == "sso" and not connector.has_sso:
        raise Http404("This connector has no single sign-on.")
    if needs == "provisioning" and not connector.has_provisioning:
        raise Http404("This connector has no Identity Management.")
    return connector


def require_manage(request: HttpRequest) -> None:
    """Pages are readable with VIEW_CONNECTORS; every change needs MANAGE_CONNECTORS."""
    if not has_capability(request.user, Capability.MANAGE_CONNECTORS):
        raise PermissionDenied("Your role may look at connectors but not change them.")


_CHECK_TABS = {
    "sso": SSO.url_name,
    "oidc": OIDC.url_name,
    "identity": IDENTITY.url_name,
    "assignments": ASSIGNMENTS.url_name,
    "mappings": MAPPINGS.url_name,
    "provisioning": "console:connector_provisioning",
}


def checks_with_links(connector: Connector) -> list[dict]:
    """The consistency checks, each with the tab where it is fixed."""
    return [
        {
            "code": check.code,
            "level": check.level,
            "message": check.message,
            "blocks_activation": check.blocks_activation,
            "fix_url": reverse(_CHECK_TABS[check.tab], args=[connector.slug]) if check.tab in _CHECK_TABS else "",
            "fix_label": check.fix_label,
            "apply_url": reverse("console:connector_apply_fix", args=[connector.slug, check.code]) if check.fix else "",
        }
        for check in connector_checks(connector)
    ]


def form_count(request: HttpRequest, prefix: str, limit: int) -> int:
    """TOTAL_FORMS of a posted formset, bounded: the rows to keep when a row is added."""
    try:
        return max(0, min(int(request.POST.get(f"{prefix}-TOTAL_FORMS") or 0), limit))
    except ValueError:
        return 0


def scope_size(connector: Connector) -> selectors.ScopeCount:
    """How many users the connector reaches (exact, or "about" at a size where counting is slow)."""
    return selectors.users_in_scope_count(connector)


def _sso_field(name: str) -> str:
    return name.removeprefix("sso.")


def _provisioning_field(name: str) -> str:
    return name.removeprefix("provisioning.")


def service_error_message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return getattr(error, "message", str(error))


# --- List and catalog ---------------------------------------------------------------------------


@console_view(Capability.VIEW_CONNECTORS)
def connector_list(request: HttpRequest) -> HttpResponse:
    form = forms.ConnectorSearchForm(request.GET)
    search = form.cleaned_data["q"].strip() if form.is_valid() else ""
    connectors = selectors.connector_list(search=search or None).annotate(
        assignment_count=Count("assignments", distinct=True)
    )
    page = Paginator(connectors, settings.CONSOLE_PAGE_SIZE).get_page(request.GET.get("page"))
    with_provisioning = [connector for connector in page.object_list if connector.has_provisioning]
    states = provisioning_selectors.provisioning_states(with_provisioning)
    rows = [{"connector": connector, "state": states.get(connector.pk)} for connector in page.object_list]
    context = {"nav": "connectors", "form": form, "page_obj": page, "rows": rows, "search": search}
    return render(request, "console/connectors/list.html", context)


def _catalog_matches(query: str) -> list:
    templates = list(load_catalog().values())
    query = query.strip().lower()
    if not query:
        return templates
    return [
        template
        for template in templates
        if query in template.name.lower() or query in template.description.lower() or query in template.slug
    ]


@console_view(Capability.VIEW_CONNECTORS)
def connector_catalog(request: HttpRequest) -> HttpResponse:
    form = forms.CatalogSearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    kinds = dict(ConnectorKind.choices)
    cards = [{"template": template, "kind_label": kinds[template.kind]} for template in _catalog_matches(query)]
    context = {"nav": "connectors", "form": form, "cards": cards, "query": query}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "console/connectors/_catalog_cards.html", context)
    return render(request, "console/connectors/catalog.html", context)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_create(request: HttpRequest, template: str) -> HttpResponse:
    """Step 1 of the wizard: general info; the connector exists from here on."""
    spec = get_template(template)
    if spec is None:
        raise Http404("No such catalog template.")
    bookmark = spec.kind == ConnectorKind.BOOKMARK
    initial = {"name": spec.name, "description": spec.description, "logo": spec.logo}
    form = forms.GeneralForm(request.POST or None, initial=initial, bookmark=bookmark)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                connector = services.connector_create(actor=request.user, template=spec.slug, **form.service_kwargs())
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(request, f"{connector.name} was created. Continue with its settings.")
                steps = steps_for(connector)
                next_url = f"{reverse(steps[1].url_name, args=[connector.slug])}?wizard=1"
                if connector.issued_client_secret:
                    return oidc_secret_page(request, connector, connector.issued_client_secret, next_url)
                return HttpResponseRedirect(next_url)
        status = 400
    step_labels = [GENERAL.label]
    if spec.kind in (ConnectorKind.SAML, ConnectorKind.SAML_SCIM):
        step_labels.append(SSO.label)
    if spec.kind in (ConnectorKind.OIDC, ConnectorKind.OIDC_SCIM):
        step_labels.append(OIDC.label)
    if spec.kind in (ConnectorKind.SCIM, ConnectorKind.SAML_SCIM, ConnectorKind.OIDC_SCIM):
        step_labels.append(IDENTITY.label)
    if not bookmark:
        step_labels.append(MAPPINGS.label)
    step_labels += [ASSIGNMENTS.label, ACTIVATE.label]
    context = {"nav": "connectors", "form": form, "spec": spec, "step_labels": step_labels}
    return render(request, "console/connectors/create.html", context, status=status)


# --- The connector's page -----------------------------------------------------------------------


@console_view(Capability.VIEW_CONNECTORS)
def connector_detail(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug)
    context = layout_context(request, connector, "overview")
    context["checks"] = checks_with_links(connector)
    context["assignment_counts"] = connector.assignments.aggregate(
        users=Count("id", filter=Q(user__isnull=False)), groups=Count("id", filter=Q(group__isnull=False))
    )
    context["users_in_scope"] = scope_size(connector)
    if connector.has_provisioning:
        context["state"] = provisioning_selectors.provisioning_state(connector)
    context["template"] = get_template(connector.template)
    context["metadata_url"] = idp_urls.metadata_url(connector)
    return render(request, "console/connectors/detail.html", context)


@console_view(Capability.VIEW_CONNECTORS)
def connector_general(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug)
    bookmark = connector.kind == ConnectorKind.BOOKMARK
    initial = {"name": connector.name, "description": connector.description, "logo": connector.logo}
    initial["bookmark_url"] = connector.bookmark_url
    form = forms.GeneralForm(request.POST or None, initial=initial, bookmark=bookmark)
    status = 200
    if request.method == "POST":
        require_manage(request)
        if form.is_valid():
            try:
                services.connector_update(actor=request.user, connector=connector, **form.service_kwargs())
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(request, "General info saved.")
                return after_save(request, connector, GENERAL)
        status = 400
    context = {**layout_context(request, connector, "general"), "form": form}
    return render(request, "console/connectors/general.html", context, status=status)


# --- SSO ----------------------------------------------------------------------------------------


def _acs_initial(sso) -> list[dict]:
    return [
        {"url": row.get("url", ""), "binding": row.get("binding") or forms.BINDING_POST, "index": row.get("index")}
        for row in sso.acs_urls
    ]


def _sso_context(request: HttpRequest, connector: Connector, form, acs_formset, metadata_form) -> dict:
    from apps.saml_idp.diagnosis import algorithms_in_use
    from apps.saml_idp.keys import published_keys
    from apps.saml_idp.selectors import metadata_fetch_list, next_key_pickup

    spec = get_template(connector.template)
    hints = spec.sp_hints if spec else {}
    forms.show_sp_hints(form, acs_formset, hints, spec.name if spec else connector.name)
    context = layout_context(request, connector, "sso")
    context.update(
        sp_hints=hints,
        template_name=spec.name if spec else "",
        form=form,
        acs_formset=acs_formset,
        metadata_form=metadata_form,
        keys=published_keys(connector),
        metadata_url=idp_urls.metadata_url(connector),
        slo_url=idp_urls.slo_url(connector),
        fetches=metadata_fetch_list(connector, limit=20),
        pickup=next_key_pickup(connector),
        sha1=connector.sso.signature_algorithm == "rsa-sha1" or connector.sso.allow_sha1,
        algorithms=algorithms_in_use(connector.sso),
    )
    return context


@console_view(Capability.VIEW_CONNECTORS)
def connector_sso(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="sso")
    sso = connector.sso
    metadata_form = forms.SpMetadataForm()
    status = 200
    if request.method == "POST":
        require_manage(request)
        form = forms.SsoForm(request.POST)
        acs_formset = forms.AcsFormSet(request.POST, prefix="acs")
        if request.POST.get("action") == "add_acs":
            rows = [
                {key: request.POST.get(f"acs-{n}-{key}", "") for key in ("url", "binding", "index")}
                for n in range(form_count(request, "acs", 19))
                if not request.POST.get(f"acs-{n}-DELETE")
            ]
            acs_formset = forms.AcsFormSet(prefix="acs", initial=[*rows, {"binding": forms.BINDING_POST}])
            form.is_valid()  # show what was typed, with its errors
        elif form.is_valid() and acs_formset.is_valid():
            changes = {**form.service_changes(), "acs_urls": forms.acs_rows(acs_formset)}
            try:
                services.connector_update(actor=request.user, connector=connector, sso=changes)
            except ValidationError as error:
                for name, texts in error.message_dict.items():
                    if name == "sso.acs_urls":
                        acs_formset._non_form_errors = acs_formset.error_class(texts)
                    else:
                        add_service_errors(form, ValidationError({name: texts}), field_for=_sso_field)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, "SSO settings saved.")
                return after_save(request, connector, SSO)
            status = 400
        else:
            status = 400
    else:
        form = forms.SsoForm(initial=forms.SsoForm.initial_from(sso))
        acs_formset = forms.AcsFormSet(prefix="acs", initial=_acs_initial(sso) or [{"binding": forms.BINDING_POST}])
    context = _sso_context(request, connector, form, acs_formset, metadata_form)
    return render(request, "console/connectors/sso.html", context, status=status)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_sp_metadata(request: HttpRequest, slug: str) -> HttpResponse:
    """Import the SP's metadata from an upload or a URL (fetched through the SSRF-guarded client)."""
    connector = connector_or_404(slug, needs="sso")
    if request.method != "POST":
        return HttpResponseRedirect(reverse("console:connector_sso", args=[slug]))
    metadata_form = forms.SpMetadataForm(request.POST, request.FILES)
    if metadata_form.is_valid():
        upload, url = metadata_form.cleaned_data["file"], metadata_form.cleaned_data["url"]
        try:
            if upload is not None:
                metadata_refresh.connector_import_sp_metadata(
                    actor=request.user, connector=connector, xml=upload.read()
                )
            else:
                metadata_refresh.connector_import_sp_metadata(actor=request.user, connector=connector, url=url)
        except ValidationError as error:
            for name, texts in error.message_dict.items():
                field = "url" if name == "url" else ("file" if upload is not None else "url")
                for text in texts:
                    metadata_form.add_error(field, text)
        except ApplicationError as error:
            metadata_form.add_error(None, error.message)
        else:
            messages.success(request, "The SP metadata was imported: check the settings below.")
            target = reverse("console:connector_sso", args=[slug])
            return HttpResponseRedirect(f"{target}?wizard=1" if in_wizard(request) else target)
    connector = connector_or_404(slug)
    sso = connector.sso
    form = forms.SsoForm(initial=forms.SsoForm.initial_from(sso))
    acs_formset = forms.AcsFormSet(prefix="acs", initial=_acs_initial(sso) or [{"binding": forms.BINDING_POST}])
    context = _sso_context(request, connector, form, acs_formset, metadata_form)
    return render(request, "console/connectors/sso.html", context, status=400)


# --- Identity Management ------------------------------------------------------------------------


@console_view(Capability.VIEW_CONNECTORS)
def connector_identity(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug, needs="provisioning")
    provisioning = connector.provisioning
    initial = forms.IdentityForm.initial_from(provisioning)
    if in_wizard(request) and not provisioning.base_url:
        initial["enabled"] = True  # setting the app up now: the URL and token typed below are meant to be used
    form = forms.IdentityForm(request.POST or None, initial=initial, token_is_set=provisioning.token_set)
    status = 200
    if request.method == "POST":
        require_manage(request)
        if form.is_valid():
            try:
                services.connector_update(actor=request.user, connector=connector, provisioning=form.service_changes())
            except ValidationError as error:
                add_service_errors(form, error, field_for=_provisioning_field)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, "Identity Management settings saved.")
                return after_save(request, connector, IDENTITY)
        status = 400
    context = {**layout_context(request, connector, "identity"), "form": form, "provisioning": provisioning}
    return render(request, "console/connectors/identity.html", context, status=status)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_test_connection(request: HttpRequest, slug: str) -> HttpResponse:
    """ "Test connection": probe the URL and token being typed (else the stored ones), read-only."""
    connector = connector_or_404(slug, needs="provisioning")
    if request.method != "POST":
        return HttpResponseRedirect(reverse("console:connector_identity", args=[slug]))
    probe_form = forms.ProbeForm(request.POST)
    probe_form.is_valid()
    data = probe_form.cleaned_data if hasattr(probe_form, "cleaned_data") else {}
    report = connection_test(
        actor=request.user,
        connector=connector,
        base_url=(data.get("base_url") or "").strip() or None,
        token=(data.get("token") or "").strip() or None,
    )
    context = {"report": report, "tested_at": timezone.now()}
    if request.htmx:
        return render(request, "console/connectors/_probe_result.html", context)
    provisioning = connector.provisioning
    initial = forms.IdentityForm.initial_from(provisioning)
    form = forms.IdentityForm(initial=initial, token_is_set=provisioning.token_set)
    context.update(layout_context(request, connector, "identity"), form=form, provisioning=provisioning)
    return render(request, "console/connectors/identity.html", context)


@console_view(Capability.MANAGE_CONNECTORS)
@require_POST
def connector_apply_fix(request: HttpRequest, slug: str, code: str) -> HttpResponse:
    """A consistency check's "Fix it": apply its recommended change, say what changed, go back."""
    connector = connector_or_404(slug)
    try:
        check = services.connector_apply_fix(actor=request.user, connector=connector, code=code)
    except (ApplicationError, ValidationError) as exc:
        messages.error(request, getattr(exc, "message", None) or "; ".join(exc.messages))
    else:
        messages.success(request, f"Fixed: {check.fix_label}.")
    back = request.POST.get("next", "")
    if not back.startswith(f"/console/connectors/{slug}/") or "//" in back or "\\" in back:
        back = reverse("console:connector_detail", args=[slug])
    return HttpResponseRedirect(back)


# --- Activation and deletion --------------------------------------------------------------------


@console_view(Capability.VIEW_CONNECTORS)
def connector_activate(request: HttpRequest, slug: str) -> HttpResponse:
    connector = connector_or_404(slug)
    checks = checks_with_links(connector)
    blocking = [check for check in checks if check["blocks_activation"]]
    status = 200
    if request.method == "POST":
        require_manage(request)
        enable = request.POST.get("action") == "activate"
        if enable and blocking:
            messages.error(request, "Fix the problems marked below before activating the connector.")
            status = 400
        else:
            try:
                services.connector_update(actor=request.user, connector=connector, enabled=enable)
            except (ValidationError, ApplicationError) as error:
                messages.error(request, service_error_message(error))
                status = 400
            else:
                if enable:
                    messages.success(request, f"{connector.name} is active: assigned users can use it.")
                else:
                    messages.success(request, f"{connector.name} is deactivated: nobody can sign in to it.")
                return HttpResponseRedirect(reverse("console:connector_detail", args=[slug]))
    context = {**layout_context(request, connector, "activate"), "checks": checks, "blocking": blocking}
    return render(request, "console/connectors/activate.html", context, status=status)


@console_view(Capability.MANAGE_CONNECTORS)
def connector_delete(request: HttpRequest, slug: str) -> HttpResponse:
    """GET says exactly what goes; POST deletes."""
    connector = connector_or_404(slug)
    if request.method == "POST":
        name = connector.name
        services.connector_delete(actor=request.user, connector=connector)
        messages.success(request, f"{name} was deleted.")
        return HttpResponseRedirect(reverse("console:connector_list"))
    linked = connector.remote_objects.exclude(remote_id="").count() if connector.has_provisioning else 0
    context = {
        "nav": "connectors",
        "connector": connector,
        "assignment_count": connector.assignments.count(),
        "linked_count": linked,
        "mapping_count": connector.mappings.count(),
    }
    return render(request, "console/connectors/delete.html", context)


urlpatterns = [
    path("", connector_list, name="connector_list"),
    path("catalog/", connector_catalog, name="connector_catalog"),
    path("new/<slug:template>/", connector_create, name="connector_create"),
    path("<slug:slug>/", connector_detail, name="connector_detail"),
    path("<slug:slug>/general/", connector_general, name="connector_general"),
    path("<slug:slug>/sso/", connector_sso, name="connector_sso"),
    path("<slug:slug>/sso/metadata/", connector_sp_metadata, name="connector_sp_metadata"),
    path("<slug:slug>/identity/", connector_identity, name="connector_identity"),
    path("<slug:slug>/identity/test/", connector_test_connection, name="connector_test_connection"),
    path("<slug:slug>/checks/<slug:code>/fix/", connector_apply_fix, name="connector_apply_fix"),
    path("<slug:slug>/activate/", connector_activate, name="connector_activate"),
    path("<slug:slug>/delete/", connector_delete, name="connector_delete"),
]
