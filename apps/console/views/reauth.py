"""Confirm it is still you: the password or a code again before a sensitive action."""

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from apps.portal.decorators import staff_mfa_required
from apps.portal.services import SignInError, confirm_identity, user_has_totp


class ReauthForm(forms.Form):
    secret = forms.CharField(
        label="Password or authenticator code",
        strip=True,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


def _safe_console_next(candidate: str | None) -> str:
    if candidate and candidate.startswith("/console/") and url_has_allowed_host_and_scheme(candidate, None):
        return candidate
    return "/console/"


@never_cache
@staff_mfa_required
def reauth(request: HttpRequest) -> HttpResponse:
    next_url = _safe_console_next(request.GET.get("next") or request.POST.get("next"))
    form = ReauthForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            confirm_identity(request, secret=form.cleaned_data["secret"])
        except SignInError as error:
            form.add_error("secret", error.message)
        else:
            return HttpResponseRedirect(next_url)
    context = {
        "form": form,
        "next": next_url,
        "has_totp": user_has_totp(request.user),
        "minutes": settings.CONSOLE_REAUTH_SECONDS // 60,
    }
    return render(request, "console/reauth.html", context, status=200 if not form.errors else 400)


urlpatterns = [path("confirm/", reauth, name="reauth")]
