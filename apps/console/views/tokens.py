"""SCIM and API tokens: list with last use, create (the secret shown once), revoke.

A new secret is rendered in the response to the POST that created it and nowhere else: it is not
put in the session or a flash message, so a reload, the list or the token's page can only show
its prefix.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone

from apps.api import selectors as api_selectors
from apps.api.services import api_token_create, api_token_revoke
from apps.common.errors import ApplicationError
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms.tokens import ApiTokenCreateForm, ScimTokenCreateForm
from apps.directory.roles import Capability, can_manage_user
from apps.scim_server import selectors as scim_selectors
from apps.scim_server.services import scim_token_create, scim_token_revoke


def scim_base_url() -> str:
    """What an HR system or another IdP is given as the SCIM endpoint of this directory."""
    return f"{settings.PORTAL_BASE_URL}{reverse('scim_server:root')}".rstrip("/")


def _found(token):
    if token is None:
        raise Http404("No such token.")
    return token


def _page(request: HttpRequest, queryset):
    return Paginator(queryset, settings.CONSOLE_PAGE_SIZE).get_page(request.GET.get("page"))


# --- SCIM tokens ----------------------------------------------------------------------------


@console_view(Capability.VIEW_CONNECTORS)
def scim_token_list(request: HttpRequest) -> HttpResponse:
    tokens = scim_selectors.scim_token_list()
    context = {"nav": "scim_tokens", "page_obj": _page(request, tokens), "scim_base_url": scim_base_url()}
    return render(request, "console/tokens/scim_list.html", context)


@console_view(Capability.MANAGE_TOKENS, sensitive=True)
def scim_token_new(request: HttpRequest) -> HttpResponse:
    form = ScimTokenCreateForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = scim_token_create(
                actor=request.user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                scope_group=form.cleaned_data["scope_group"],
                manages_staff=form.cleaned_data.get("manages_staff", False),
            )
        except (ApplicationError, ValidationError) as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f'SCIM token "{token.name}" created.')
            context = {
                "nav": "scim_tokens",
                "kind": "scim",
                "token": token,
                "secret": secret,
                "scim_base_url": scim_base_url(),
                "list_url": reverse("console:scim_token_list"),
            }
            return render(request, "console/tokens/created.html", context, status=201)
    status = 400 if form.errors else 200
    return render(request, "console/tokens/scim_form.html", {"nav": "scim_tokens", "form": form}, status=status)


@console_view(Capability.VIEW_CONNECTORS)
def scim_token_detail(request: HttpRequest, pk: int) -> HttpResponse:
    token = _found(scim_selectors.scim_token_get(pk))
    context = {"nav": "scim_tokens", "kind": "scim", "token": token, "scim_base_url": scim_base_url()}
    return render(request, "console/tokens/detail.html", context)


@console_view(Capability.MANAGE_TOKENS)
def scim_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = _found(scim_selectors.scim_token_get(pk))
    if request.method == "POST":
        scim_token_revoke(actor=request.user, token=token)
        messages.success(request, f'SCIM token "{token.name}" revoked: clients using it are refused from now on.')
        return HttpResponseRedirect(reverse("console:scim_token_detail", args=[token.pk]))
    context = {"nav": "scim_tokens", "kind": "scim", "token": token}
    return render(request, "console/tokens/revoke.html", context)


# --- API tokens -----------------------------------------------------------------------------


def _check_may_manage_token_of(actor, owner) -> None:
    # A token acts with its owner's role, so it is managed like the owner's account.
    if owner.pk != actor.pk and not can_manage_user(actor, owner):
        raise PermissionDenied("This token belongs to an account that outranks yours.")


@console_view(Capability.VIEW_CONNECTORS)
def api_token_list(request: HttpRequest) -> HttpResponse:
    tokens = api_selectors.api_token_list()
    context = {"nav": "api_tokens", "page_obj": _page(request, tokens), "now": timezone.now()}
    return render(request, "console/tokens/api_list.html", context)


@console_view(Capability.MANAGE_TOKENS, sensitive=True)
def api_token_new(request: HttpRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = api_token_create(
                actor=request.user,
                user=form.cleaned_data["user"],
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
            )
        except (ApplicationError, ValidationError) as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f'API token "{token.name}" created.')
            context = {
                "nav": "api_tokens",
                "kind": "api",
                "token": token,
                "secret": secret,
                "list_url": reverse("console:api_token_list"),
            }
            return render(request, "console/tokens/created.html", context, status=201)
    status = 400 if form.errors else 200
    return render(request, "console/tokens/api_form.html", {"nav": "api_tokens", "form": form}, status=status)


@console_view(Capability.VIEW_CONNECTORS)
def api_token_detail(request: HttpRequest, pk: int) -> HttpResponse:
    token = _found(api_selectors.api_token_get(pk))
    context = {"nav": "api_tokens", "kind": "api", "token": token, "now": timezone.now()}
    return render(request, "console/tokens/detail.html", context)


@console_view(Capability.MANAGE_TOKENS)
def api_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = _found(api_selectors.api_token_get(pk))
    _check_may_manage_token_of(request.user, token.user)
    if request.method == "POST":
        api_token_revoke(actor=request.user, token=token)
        messages.success(request, f'API token "{token.name}" revoked: requests with it are refused from now on.')
        return HttpResponseRedirect(reverse("console:api_token_detail", args=[token.pk]))
    return render(request, "console/tokens/revoke.html", {"nav": "api_tokens", "kind": "api", "token": token})


urlpatterns = [
    path("scim/", scim_token_list, name="scim_token_list"),
    path("scim/new/", scim_token_new, name="scim_token_create"),
    path("scim/<int:pk>/", scim_token_detail, name="scim_token_detail"),
    path("scim/<int:pk>/revoke/", scim_token_revoke_view, name="scim_token_revoke"),
    path("api/", api_token_list, name="api_token_list"),
    path("api/new/", api_token_new, name="api_token_create"),
    path("api/<int:pk>/", api_token_detail, name="api_token_detail"),
    path("api/<int:pk>/revoke/", api_token_revoke_view, name="api_token_revoke"),
]
