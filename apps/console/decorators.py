"""The one gate every console view passes: signed in, staff, second factor, capability, recent sign-in."""

import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.cache import never_cache

from apps.directory.roles import Capability, has_capability
from apps.portal.decorators import staff_mfa_required
from apps.portal.services import last_authenticated_at

View = Callable[..., HttpResponse]


def recently_authenticated(request: HttpRequest) -> bool:
    return time.time() - last_authenticated_at(request) <= settings.CONSOLE_REAUTH_SECONDS


def reauth_redirect(request: HttpRequest) -> HttpResponse:
    """To the password/code prompt, then back to the page (a GET of the same URL shows the form again)."""
    target = f"{reverse('console:reauth')}?{urlencode({'next': request.get_full_path()})}"
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


def console_view(capability: Capability, *, sensitive: bool = False) -> Callable[[View], View]:
    """Guard a console view.

    `sensitive` views (key rotation, token creation, role changes) also need the password or a
    second factor within the last CONSOLE_REAUTH_SECONDS, on GET as on POST, so the admin is asked
    before filling in the form rather than after.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not has_capability(request.user, capability):
                raise PermissionDenied("Your role does not allow this.")
            if sensitive and not recently_authenticated(request):
                return reauth_redirect(request)
            return view(request, *args, **kwargs)

        wrapped = never_cache(staff_mfa_required(guarded))
        # Lets a test walk the URLconf and prove that no console view was left unguarded.
        wrapped.console_capability = capability
        wrapped.console_sensitive = sensitive
        return wrapped

    return decorate
