"""The IdP's signing keys: the active and next keys, connector overrides, who has the next key, rotation."""

import datetime
import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from apps.common.errors import ApplicationError
from apps.console.decorators import console_view
from apps.console.forms.keys import NextKeyForm
from apps.directory.roles import Capability
from apps.saml_idp import keys
from apps.saml_idp.models import KeyScope, KeyStatus, SigningKey

EXPIRY_WARNING = datetime.timedelta(days=60)
_RETIRED_SHOWN = 5


def _portal_keys() -> dict[str, SigningKey | None]:
    current = keys.signing_key_list().filter(status__in=[KeyStatus.ACTIVE, KeyStatus.NEXT])
    by_status = {key.status: key for key in current.defer("private_key_ciphertext")}
    return {"active": by_status.get(KeyStatus.ACTIVE), "next": by_status.get(KeyStatus.NEXT)}


def _expiring(key: SigningKey | None, now: datetime.datetime) -> bool:
    return key is not None and key.not_after - now < EXPIRY_WARNING


def _pickup(next_key: SigningKey | None) -> tuple[list, list]:
    """(connectors that fetched metadata since the next key, those that did not)."""
    connectors = list(keys.metadata_pickup(next_key))
    if next_key is None:
        return [], connectors
    have = [connector for connector in connectors if connector.fetched_since_next]
    lack = [connector for connector in connectors if not connector.fetched_since_next]
    return have, lack


@console_view(Capability.VIEW_CONNECTORS)
@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    portal = _portal_keys()
    overrides = list(keys.connector_key_overrides())
    have_next, lack_next = _pickup(portal["next"])
    retired = list(
        keys.signing_key_list(include_connector_keys=True)
        .filter(status=KeyStatus.RETIRED)
        .defer("private_key_ciphertext")[:_RETIRED_SHOWN]
    )
    context = {
        "nav": "keys",
        "active": portal["active"],
        "next": portal["next"],
        "active_expiring": _expiring(portal["active"], now),
        "next_expiring": _expiring(portal["next"], now),
        "overrides": [{"link": link, "expiring": _expiring(link.key, now)} for link in overrides],
        "have_next": have_next,
        "lack_next": lack_next,
        "retired": retired,
        "warning_days": EXPIRY_WARNING.days,
    }
    return render(request, "console/keys/list.html", context)


@console_view(Capability.MANAGE_KEYS, sensitive=True)
@require_http_methods(["GET", "POST"])
def key_generate_next(request: HttpRequest) -> HttpResponse:
    """Generate the next key: published in metadata at once, signing nothing until the rotation."""
    form = NextKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key = keys.signing_key_create_next(
                actor=request.user,
                key_size=form.cleaned_data["key_size"],
                validity_days=form.cleaned_data["validity_days"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                f"Next key {key.fingerprint_sha256[:23]}… generated and published in every connector's metadata. "
                "Rotate once the apps have fetched it.",
            )
            return HttpResponseRedirect(reverse("console:key_list"))
    context = {"nav": "keys", "form": form, "next": keys.portal_next_key()}
    return render(request, "console/keys/generate.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_KEYS, sensitive=True)
@require_http_methods(["GET", "POST"])
def key_rotate(request: HttpRequest) -> HttpResponse:
    """GET says what rotating will do (and which apps would break); POST promotes the next key."""
    if request.method == "POST":
        active = keys.signing_key_rotate(actor=request.user)
        messages.success(
            request,
            f"Rotated: key {active.fingerprint_sha256[:23]}… now signs every response; the previous key is retired.",
        )
        return HttpResponseRedirect(reverse("console:key_list"))
    portal = _portal_keys()
    have_next, lack_next = _pickup(portal["next"])
    context = {"nav": "keys", **portal, "have_next": have_next, "lack_next": lack_next}
    return render(request, "console/keys/rotate.html", context)


@console_view(Capability.VIEW_CONNECTORS)
@require_GET
def key_certificate(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """The certificate (public half) as PEM, to paste into an app that does not read metadata."""
    key = SigningKey.objects.filter(pk=pk).only("id", "scope", "status", "certificate_pem").first()
    if key is None:
        raise Http404("No such key.")
    response = HttpResponse(key.certificate_pem, content_type="application/x-pem-file")
    scope = "portal" if key.scope == KeyScope.PORTAL else "connector"
    response["Content-Disposition"] = f'attachment; filename="idp-{scope}-{key.status}-{str(key.pk)[:8]}.pem"'
    return response


urlpatterns = [
    path("", key_list, name="key_list"),
    path("next", key_generate_next, name="key_generate_next"),
    path("rotate", key_rotate, name="key_rotate"),
    path("<uuid:pk>/certificate.pem", key_certificate, name="key_certificate"),
]
