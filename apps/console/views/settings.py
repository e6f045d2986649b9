"""Settings (super-admins): delegated login to upstream IdPs, and the password and session policy.

Every page here is sensitive: the password or a code again when the sign-in is older than
CONSOLE_REAUTH_SECONDS, because these settings decide how everyone else signs in.
"""

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from apps.common.errors import ApplicationError
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms.settings import SignInPolicyForm, UpstreamForm
from apps.directory.roles import Capability
from apps.portal.policy import policy_is_saved, sign_in_policy, sign_in_policy_update
from apps.saml_sp import keys as sp_keys
from apps.saml_sp import services as upstreams
from apps.saml_sp.conf import sp_urls
from apps.saml_sp.models import SpKey, SpKeyStatus, UpstreamIdentityProvider

# Service field -> form field, where they differ.
_UPSTREAM_FORM_FIELDS = {"metadata_xml": "metadata_file"}


def _upstream_rows() -> list[dict]:
    return [{"upstream": upstream, "urls": sp_urls(upstream)} for upstream in UpstreamIdentityProvider.objects.all()]


def _sp_keys() -> dict[str, SpKey | None]:
    """Delegated login's active and next keys, once there is an upstream to use them."""
    if not UpstreamIdentityProvider.objects.exists():
        return {"sp_key_active": None, "sp_key_next": None}
    sp_keys.ensure_active_sp_key()
    current = sp_keys.sp_key_list().filter(status__in=[SpKeyStatus.ACTIVE, SpKeyStatus.NEXT])
    by_status = {key.status: key for key in current}
    return {"sp_key_active": by_status.get(SpKeyStatus.ACTIVE), "sp_key_next": by_status.get(SpKeyStatus.NEXT)}


@console_view(Capability.MANAGE_SETTINGS, sensitive=True)
def settings_overview(request: HttpRequest) -> HttpResponse:
    """The overview; a POST saves the password and session policy."""
    policy = sign_in_policy()
    form = SignInPolicyForm(request.POST or None, initial=SignInPolicyForm.initial_from(policy))
    if request.method == "POST" and form.is_valid():
        try:
            sign_in_policy_update(actor=request.user, **form.policy_changes())
        except (ApplicationError, ValidationError) as error:
            add_service_errors(form, error, field_for=SignInPolicyForm.form_field_for)
        else:
            messages.success(request, "Password and session policy saved. It applies from the next request on.")
            return HttpResponseRedirect(reverse("console:settings"))
    context = {
        "nav": "settings",
        "policy_form": form,
        "policy_is_default": not policy_is_saved(),
        "upstreams": _upstream_rows(),
        **_sp_keys(),
    }
    return render(request, "console/settings/overview.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_SETTINGS, sensitive=True)
def upstream_create(request: HttpRequest) -> HttpResponse:
    form = UpstreamForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        changes = form.changes()
        try:
            upstream = upstreams.upstream_create(actor=request.user, **changes)
        except (ApplicationError, ValidationError) as error:
            add_service_errors(form, error, field_for=lambda field: _UPSTREAM_FORM_FIELDS.get(field, field))
        else:
            messages.success(
                request,
                f"{upstream.name} added. Give it the SP metadata URL below so that it trusts the portal.",
            )
            return HttpResponseRedirect(reverse("console:settings_upstream_edit", args=[upstream.pk]))
    context = {"nav": "settings", "form": form, "upstream": None}
    return render(request, "console/settings/upstream_form.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_SETTINGS, sensitive=True)
def upstream_edit(request: HttpRequest, pk) -> HttpResponse:
    upstream = get_object_or_404(UpstreamIdentityProvider, pk=pk)
    form = UpstreamForm(request.POST or None, request.FILES or None, upstream=upstream)
    if request.method == "POST" and form.is_valid():
        changes = form.changes()
        try:
            if changes:
                upstreams.upstream_update(actor=request.user, upstream=upstream, **changes)
        except (ApplicationError, ValidationError) as error:
            # The row was changed in memory before validation failed: show the stored state.
            upstream.refresh_from_db()
            add_service_errors(form, error, field_for=lambda field: _UPSTREAM_FORM_FIELDS.get(field, field))
        else:
            messages.success(request, f"{upstream.name} saved." if changes else "Nothing changed.")
            return HttpResponseRedirect(reverse("console:settings_upstream_edit", args=[upstream.pk]))
    context = {"nav": "settings", "form": form, "upstream": upstream, "urls": sp_urls(upstream)}
    return render(request, "console/settings/upstream_form.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_SETTINGS, sensitive=True)
def upstream_delete(request: HttpRequest, pk) -> HttpResponse:
    upstream = get_object_or_404(UpstreamIdentityProvider, pk=pk)
    if request.method == "POST":
        name = upstream.name
        upstreams.upstream_delete(actor=request.user, upstream=upstream)
        messages.success(request, f"{name} removed: its sign-in button and SP URLs no longer work.")
        return HttpResponseRedirect(reverse("console:settings"))
    context = {"nav": "settings", "upstream": upstream, "urls": sp_urls(upstream)}
    return render(request, "console/settings/upstream_delete.html", context)


@console_view(Capability.MANAGE_SETTINGS, sensitive=True)
@require_POST
def sp_key_create_next(request: HttpRequest) -> HttpResponse:
    """Generate delegated login's next key: in every SP metadata at once, used after the rotation."""
    try:
        key = sp_keys.sp_key_create_next(actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Next key {key.fingerprint_sha256[:23]}… generated and published in the SP metadata. "
            "Rotate once each upstream IdP has fetched it again.",
        )
    return HttpResponseRedirect(reverse("console:settings") + "#sp-key-heading")


@console_view(Capability.MANAGE_SETTINGS, sensitive=True)
@require_POST
def sp_key_rotate(request: HttpRequest) -> HttpResponse:
    key = sp_keys.sp_key_rotate(actor=request.user)
    messages.success(
        request,
        f"Rotated: key {key.fingerprint_sha256[:23]}… is active; the previous one still decrypts for a while.",
    )
    return HttpResponseRedirect(reverse("console:settings") + "#sp-key-heading")


@console_view(Capability.MANAGE_SETTINGS)
@require_GET
def sp_key_certificate(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """The certificate (public half) as PEM, for an IdP that does not read the SP metadata."""
    key = SpKey.objects.filter(pk=pk).only("id", "status", "certificate_pem").first()
    if key is None:
        raise Http404("No such key.")
    response = HttpResponse(key.certificate_pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="delegated-login-{key.status}-{str(key.pk)[:8]}.pem"'
    return response


urlpatterns = [
    path("", settings_overview, name="settings"),
    path("upstreams/new/", upstream_create, name="settings_upstream_create"),
    path("upstreams/<uuid:pk>/", upstream_edit, name="settings_upstream_edit"),
    path("upstreams/<uuid:pk>/delete/", upstream_delete, name="settings_upstream_delete"),
    path("delegated-login-key/next/", sp_key_create_next, name="settings_sp_key_next"),
    path("delegated-login-key/rotate/", sp_key_rotate, name="settings_sp_key_rotate"),
    path("delegated-login-key/<uuid:pk>/certificate.pem", sp_key_certificate, name="settings_sp_key_certificate"),
]
