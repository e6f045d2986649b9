"""End-user pages: sign-in, second factor, enrolment, launchpad, profile, sign-out, password reset.

Views parse the request, call apps.portal.services and render; the rules live in services.
"""

import datetime
from typing import Any
from urllib.parse import urlencode

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from apps.audit.middleware import client_ip
from apps.common.security_headers import allow_frames_and_forms
from apps.common.sign_out import FrontChannelLogout, sign_out_participants
from apps.portal import enrolment, passkeys, passwords, selectors, services
from apps.portal.forms import CodeForm, PortalPasswordResetForm, SignInForm
from apps.portal.policy import sign_in_policy
from apps.portal.sign_in_options import enforced_option, sign_in_options
from apps.portal.sign_out_steps import SignOutStep, sign_out_step
from apps.saml_idp import logout as slo
from apps.saml_idp.session import AUTH_TIME_KEY


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


# --- Sign-in ----------------------------------------------------------------------------------


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    next_url = services.safe_next(request.POST.get("next") or request.GET.get("next"), default="")
    local = request.GET.get("local") == "1" or request.POST.get("local") == "1"
    options = sign_in_options(next_url or "/")
    enforced = enforced_option(options)
    if enforced is not None and not local:
        return HttpResponseRedirect(enforced.url)
    if request.GET.get("cancel") == "1":
        services.pending_sign_in_cancel(request)

    form = SignInForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            user = services.password_sign_in(
                request, username=form.cleaned_data["username"], password=form.cleaned_data["password"]
            )
            if enforced is not None and not user.is_superuser:
                # Break-glass password sign-in is for super-admins only while an upstream is enforced.
                services.refuse_local_sign_in(request, user)
            destination = services.first_factor_passed(
                request, user, backend=services.PASSWORD_BACKEND, method="password", next_url=next_url
            )
            return HttpResponseRedirect(destination)
        except services.SignInError as refusal:
            error = refusal.message
    elif request.method == "POST":
        error = "Enter your username or email and your password."
    context = {
        "form": form,
        "error": error,
        "next": next_url,
        "local": local,
        "enforced": enforced,
        "upstreams": options,
    }
    return _no_store(render(request, "portal/login.html", context))


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def mfa(request: HttpRequest) -> HttpResponse:
    """The second step of a sign-in, or a staff user's step-up before a staff page."""
    current = services.pending_sign_in(request)
    if current is None and not request.user.is_authenticated:
        messages.info(request, services.PENDING_EXPIRED)
        return redirect("portal:login")
    if current is not None and current[0].enrol:
        return redirect("portal:totp_setup")
    if current is None and not services.user_has_second_factor(request.user):
        return redirect(f"{reverse('portal:totp_setup')}?{urlencode({'next': request.GET.get('next', '/')})}")
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            return HttpResponseRedirect(services.mfa_verify(request, code=form.cleaned_data["code"]))
        except services.SignInError as refusal:
            if refusal.code in ("too_many_codes", "pending_expired"):
                messages.error(request, refusal.message)
                return redirect("portal:login")
            error = refusal.message
    user = current[1] if current else request.user
    error = error or request.session.pop("portal_passkey_error", "")
    context = {
        "form": form,
        "error": error,
        "user_name": user.get_short_name(),
        "next": request.GET.get("next", ""),
        "has_totp": services.user_has_totp(user),
        "passkey_options": passkeys.authentication_options(request, user) if services.user_has_passkey(user) else "",
    }
    return _no_store(render(request, "portal/mfa.html", context))


@csrf_protect
@never_cache
@require_POST
def mfa_passkey(request: HttpRequest) -> HttpResponse:
    """The second factor by passkey: the assertion that static/portal/webauthn.js posts."""
    try:
        return HttpResponseRedirect(
            services.passkey_verify(request, credential_json=request.POST.get("credential", ""))
        )
    except services.SignInError as refusal:
        if refusal.code == "pending_expired":
            messages.error(request, refusal.message)
            return redirect("portal:login")
        request.session["portal_passkey_error"] = refusal.message
        next_url = services.safe_next(request.POST.get("next"), default="")
        return redirect(f"{reverse('portal:mfa')}?{urlencode({'next': next_url})}" if next_url else "portal:mfa")


def _enrolling_user(request: HttpRequest) -> tuple[Any, bool] | HttpResponse:
    """The user setting up a factor (pending enrolment or signed in), or where to send them."""
    current = services.pending_sign_in(request)
    if current is not None and current[0].enrol:
        return current[1], True
    if request.user.is_authenticated:
        if services.user_has_second_factor(request.user) and not request.user.is_verified():
            # Adding or replacing a factor needs an existing one first.
            return redirect(f"{reverse('portal:mfa')}?{urlencode({'next': request.get_full_path()})}")
        if enrolment.enrolment_confirmed_since(request, request.user) is None:
            return _to_password_prompt(request)
        return request.user, False
    return redirect("portal:login")


def _to_password_prompt(request: HttpRequest) -> HttpResponse:
    """Ask for the password again, then come back to this page (a GET shows its form anew)."""
    return redirect(f"{reverse('portal:confirm_password')}?{urlencode({'next': request.get_full_path()})}")


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def confirm_password(request: HttpRequest) -> HttpResponse:
    """The password again, before a second factor is set up (services.confirm_password; wrong
    answers count towards the lockout). Accounts without a password sign in again upstream."""
    next_url = services.safe_next(
        request.GET.get("next") or request.POST.get("next"), default=reverse("portal:profile")
    )
    error = ""
    if request.method == "POST":
        try:
            services.confirm_password(request, password=request.POST.get("password", ""))
        except services.SignInError as refusal:
            error = refusal.message
        else:
            return HttpResponseRedirect(next_url)
    context = {
        "error": error,
        "next": next_url,
        "has_password": request.user.has_usable_password(),
        "upstreams": sign_in_options(next_url),
    }
    return _no_store(render(request, "portal/confirm_password.html", context, status=400 if error else 200))


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def passkey_add(request: HttpRequest) -> HttpResponse:
    """Register a passkey or security key (WebAuthn) as a second factor."""
    subject = _enrolling_user(request)
    if isinstance(subject, HttpResponse):
        return subject
    user, pending = subject
    next_url = services.safe_next(
        request.GET.get("next") or request.POST.get("next"), default=reverse("portal:profile")
    )
    error = ""
    if request.method == "POST":
        try:
            codes = enrolment.passkey_enrol(
                request,
                user=user,
                credential_json=request.POST.get("credential", ""),
                name=request.POST.get("name", "")[:64],
            )
        except services.SignInError as refusal:
            if refusal.code == "confirm_password":
                return _to_password_prompt(request)
            error = refusal.message
        else:
            continue_url = request.session.pop("portal_after_codes", None) or next_url
            if codes:
                return _no_store(
                    render(request, "portal/recovery_codes.html", {"codes": codes, "continue_url": continue_url})
                )
            messages.success(request, "Your passkey is ready.")
            return HttpResponseRedirect(continue_url)
    context = {
        "options": passkeys.registration_options(request, user),
        "error": error,
        "next": next_url,
        "pending": pending,
        "staff": user.is_staff,
    }
    return _no_store(render(request, "portal/passkey_add.html", context))


@login_required
@require_POST
def passkey_remove(request: HttpRequest, pk: int) -> HttpResponse:
    if not request.user.is_verified():
        return redirect(f"{reverse('portal:mfa')}?{urlencode({'next': reverse('portal:profile')})}")
    enrolment.passkey_remove(actor=request.user, user=request.user, credential_id=pk)
    messages.success(request, "The passkey was removed.")
    return redirect("portal:profile")


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def totp_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator app: a QR code and the secret, confirmed with one code from the app."""
    subject = _enrolling_user(request)
    if isinstance(subject, HttpResponse):
        return subject
    user, pending = subject
    next_url = services.safe_next(
        request.GET.get("next") or request.POST.get("next"), default=reverse("portal:profile")
    )
    try:
        device = enrolment.totp_device_begin(request, user)
    except services.SignInError:
        return _to_password_prompt(request)
    form = CodeForm(request.POST or None)
    error = ""
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            codes = enrolment.totp_device_confirm(request, user=user, code=form.cleaned_data["code"])
        except services.SignInError as refusal:
            if refusal.code == "confirm_password":
                return _to_password_prompt(request)
            error = refusal.message
            status = 400
        else:
            continue_url = request.session.pop("portal_after_codes", None) or next_url
            return _no_store(
                render(request, "portal/recovery_codes.html", {"codes": codes, "continue_url": continue_url})
            )
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#1c2430", light="#ffffff")
    context = {
        "form": form,
        "error": error,
        "qr_svg": qr_svg,
        "secret": _base32_secret(device.bin_key),
        "next": next_url,
        "pending": pending,
        "staff": user.is_staff,
    }
    return _no_store(render(request, "portal/totp_setup.html", context, status=status))


def _base32_secret(key: bytes) -> str:
    import base64

    secret = base64.b32encode(key).decode().rstrip("=")
    return " ".join(secret[index : index + 4] for index in range(0, len(secret), 4))


# --- Launchpad and profile ----------------------------------------------------------------------


@login_required
@never_cache
def launchpad(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:100]
    tiles = selectors.launchpad_tiles(request.user, search=search)
    context = {
        "tiles": tiles,
        "search": search,
        "show_search": bool(search) or len(tiles) > selectors.SEARCH_THRESHOLD,
    }
    return render(request, "portal/launchpad.html", context)


@login_required
@never_cache
def profile(request: HttpRequest) -> HttpResponse:
    context = {
        "mfa": selectors.mfa_summary(request.user),
        "sessions": selectors.user_sessions(request.user),
        "current_session": request.session.session_key,
        "mfa_required": sign_in_policy().mfa_required or request.user.is_staff,
    }
    return render(request, "portal/profile.html", context)


@sensitive_post_parameters("current", "new", "again")
@csrf_protect
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """Choose a new password: required after a temporary one, and open to anyone from the profile."""
    forced = request.user.must_change_password
    next_url = services.safe_next(request.GET.get("next") or request.POST.get("next"), default="/")
    error, field = "", ""
    if request.method == "POST":
        try:
            passwords.password_change(
                request,
                current=request.POST.get("current", ""),
                new=request.POST.get("new", ""),
                again=request.POST.get("again", ""),
            )
        except passwords.PasswordChangeError as refusal:
            error, field = refusal.message, refusal.field
        else:
            messages.success(request, "Your password is changed.")
            return HttpResponseRedirect(next_url if forced else reverse("portal:profile"))
    context = {"forced": forced, "next": next_url, "error": error, "error_field": field}
    return _no_store(render(request, "portal/password_change.html", context, status=400 if error else 200))


@login_required
@require_POST
def recovery_codes_regenerate(request: HttpRequest) -> HttpResponse:
    if not request.user.is_verified():
        return redirect(f"{reverse('portal:mfa')}?{urlencode({'next': reverse('portal:profile')})}")
    codes = enrolment.recovery_codes_regenerate(user=request.user)
    return _no_store(
        render(request, "portal/recovery_codes.html", {"codes": codes, "continue_url": reverse("portal:profile")})
    )


@login_required
@require_POST
def totp_remove(request: HttpRequest) -> HttpResponse:
    if not request.user.is_verified():
        return redirect(f"{reverse('portal:mfa')}?{urlencode({'next': reverse('portal:profile')})}")
    enrolment.totp_device_remove(actor=request.user, user=request.user)
    messages.success(request, "The authenticator app and its recovery codes were removed.")
    return redirect("portal:profile")


@login_required
@require_POST
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    count = services.sign_out_everywhere(actor=request.user, user=request.user)
    return _no_store(render(request, "portal/logged_out.html", {"ended_sessions": count, "slo": []}))


# --- Sign-out -----------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def sign_out(request: HttpRequest) -> HttpResponse:
    """GET asks; POST (with the CSRF token) signs out here and, front-channel, at the apps."""
    if request.method == "GET":
        if not request.user.is_authenticated:
            return _no_store(render(request, "portal/logged_out.html", {"slo": []}))
        return _no_store(render(request, "portal/logout_confirm.html"))
    then = sign_out_step(request) if request.user.is_authenticated else None
    return end_session_page(request, then=then)


def end_session_page(request: HttpRequest, *, then: SignOutStep | None) -> HttpResponse:
    """End this portal session and show the signed-out page, which signs the person out of the apps
    they used during it (front-channel LogoutRequests in frames), then goes on to `then` (the
    upstream IdP's sign-out, or the answer to it) at the top level. Without apps to tell, the
    browser goes to `then` at once."""
    messages_out: list[slo.LogoutMessage | FrontChannelLogout] = []
    if request.user.is_authenticated:
        stamp = request.session.get(AUTH_TIME_KEY)
        since = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC) if stamp else None
        session_key = request.session.session_key or ""
        messages_out = slo.logout_messages(request.user, session_key=session_key, since=since)
        # OpenID Connect sign-ins of this session end too, and their apps get front-channel logouts.
        messages_out += sign_out_participants(user=request.user, session_key=session_key, since=since)
    services.sign_out(request)
    if then is not None:
        request.session.update(then.session_data)
        if not messages_out and not then.fields:
            return _no_store(HttpResponseRedirect(then.url))
    response = render(request, "portal/logged_out.html", {"slo": messages_out, "then": then})
    origins = [message.origin for message in messages_out] + ([then.origin] if then is not None else [])
    return _no_store(allow_frames_and_forms(response, origins))


# --- Password reset -----------------------------------------------------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PortalPasswordResetForm
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/email/password_reset.txt"
    subject_template_name = "portal/email/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def form_valid(self, form: PortalPasswordResetForm) -> HttpResponse:
        email = form.cleaned_data["email"]
        users = list(form.get_users(email))
        user = users[0] if users else None
        # Throttled or not, the answer is the same page: it must not tell which emails exist.
        if not passwords.password_reset_allowed(user=user, ip=client_ip(self.request)):
            passwords.password_reset_record(user=user, throttled=True)
            return HttpResponseRedirect(self.get_success_url())
        passwords.password_reset_record(user=user, throttled=False)
        base = settings.PORTAL_BASE_URL
        scheme, _, host = base.partition("://")
        form.save(
            domain_override=host,
            use_https=scheme == "https",
            token_generator=default_token_generator,
            from_email=settings.DEFAULT_FROM_EMAIL,
            email_template_name=self.email_template_name,
            subject_template_name=self.subject_template_name,
            request=self.request,
            extra_email_context={"portal_base_url": base, "timeout_minutes": settings.PASSWORD_RESET_TIMEOUT // 60},
        )
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/password_reset_done.html"


@method_decorator(sensitive_post_parameters("new_password1", "new_password2"), name="dispatch")
class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")
    post_reset_login = False

    def form_valid(self, form) -> HttpResponse:  # type: ignore[no-untyped-def]
        # The service sets the password (policy from AUTH_PASSWORD_VALIDATORS, checked by the
        # form too), ends every session and lifts the account's lockout.
        passwords.password_reset_complete(user=form.user, password=form.cleaned_data["new_password1"])
        # A fresh, empty session: the reset token goes, and so does any sign-in this browser had.
        self.request.session.flush()
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/password_reset_complete.html"
