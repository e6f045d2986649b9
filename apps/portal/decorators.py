"""Access rules for views: staff pages need a second factor."""

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from apps.portal.services import user_has_second_factor


def staff_mfa_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Only active staff whose session passed a second factor may see the view.

    Signed out: to the sign-in page. Not staff: 403. Staff without a second factor (a session
    that lost its factor, or became staff while signed in; a new sign-in stops at enrolment):
    to enrolment, which asks for the password again first; staff with one whose session has not
    used it (a factor added after signing in): to the code prompt. Both come back here afterwards.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("This page is for administrators.")
        if not user.is_verified():
            target = "portal:mfa" if user_has_second_factor(user) else "portal:totp_setup"
            return HttpResponseRedirect(f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return wrapped


class StaffMfaRequiredMixin:
    """`staff_mfa_required` for class-based views."""

    @classmethod
    def as_view(cls, **initkwargs):  # type: ignore[no-untyped-def]
        return staff_mfa_required(super().as_view(**initkwargs))  # type: ignore[misc]
