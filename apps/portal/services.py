"""The rules of signing in and out of the portal. Views parse and render; everything else is here.

A sign-in has two steps. The first factor (a password, or an upstream IdP through apps.saml_sp)
proves who the person is; `first_factor_passed` then either completes the sign-in or parks it
in the session as a *pending* sign-in that the second factor (TOTP or a recovery code) completes.
Only `complete_sign_in` calls Django's `login()`, so every signal receiver (the SAML IdP's
auth-time stamp, django-otp, axes' reset) sees one sign-in, after every factor.
"""

import datetime
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.middleware import client_ip
from apps.audit.services import audit_record
from apps.common.errors import ApplicationError
from apps.common.sign_in_method import SIGN_IN_METHOD_SESSION_KEY
from apps.common.sign_out import sign_out_participants
from apps.directory.models import User
from apps.directory.roles import require_reach
from apps.portal import passkeys
from apps.portal.backends import REFUSAL_ATTRIBUTE
from apps.portal.lockout import attempted_username, count_failure, is_locked_out
from apps.portal.models import PortalSession, WebAuthnCredential
from apps.portal.policy import sign_in_policy

PENDING_KEY = "portal_pending_sign_in"
# When this session last did something; the idle timeout reads it (apps.portal.middleware).
LAST_SEEN_KEY = "portal_last_seen"
# When this session was signed in; bounds its whole life to the policy's session lifetime.
SIGNED_IN_AT_KEY = "portal_signed_in_at"
# How this session was signed in ("password", "password+totp", "saml:<slug>+totp", ...).
METHOD_KEY = SIGN_IN_METHOD_SESSION_KEY
PASSWORD_BACKEND = "apps.portal.backends.PortalBackend"  # noqa: S105 - a dotted path, not a password

INVALID_CREDENTIALS = "That username or email and password do not match. Check them and try again."
ACCOUNT_SUSPENDED = "This account is suspended, so it cannot sign in. Ask your administrator."
INVALID_CODE = "That code did not work. Codes change every 30 seconds and each one works only once."
THROTTLED = "Too many wrong codes in a row: wait a few seconds, then enter the newest code."
PENDING_EXPIRED = "Your sign-in took too long. Please sign in again."
LOCAL_SIGN_IN_DISABLED = "Sign-in with a password is switched off here: use your organisation's sign-in."


class SignInError(ApplicationError):
    """A refusal whose message is safe to show (it never tells whether an account exists)."""


# --- Where to go afterwards -----------------------------------------------------------------


def safe_next(candidate: str | None, default: str = "/") -> str:
    """`candidate` if it is a path on this portal, else `default`.

    Only a path that starts with one "/" is accepted (no scheme, no host, no "//", no "/\\", no
    control characters or spaces, which browsers strip or reinterpret); an absolute URL is
    accepted only on PORTAL_BASE_URL's own origin, reduced to its path.
    """
    if not candidate:
        return default
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in candidate) or "\\" in candidate:
        return default
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        portal = urlsplit(settings.PORTAL_BASE_URL)
        if (parts.scheme, parts.netloc) != (portal.scheme, portal.netloc):
            return default
        candidate = parts.path or "/"
        if parts.query:
            candidate += "?" + parts.query
        parts = urlsplit(candidate)
    if not candidate.startswith("/") or candidate.startswith("//") or parts.netloc:
        return default
    return candidate


# --- First factor ---------------------------------------------------------------------------


@dataclass
class PendingSignIn:
    """A first factor passed; the second one is still to come. Lives in the session only."""

    user_id: str
    backend: str
    method: str
    next_url: str
    started: float
    enrol: bool = False
    failures: int = 0


def _audit_failure(request: HttpRequest, username: str, reason: str, user: User | None) -> None:
    with transaction.atomic():
        audit_record(
            actor=user,
            action="portal.login.failure",
            target=user,
            target_label="" if user else username[:150],
            after={
                "reason": reason,
                "method": "password",
                "locked_out": bool(getattr(request, "axes_locked_out", False)),
            },
            actor_label=(user.username if user else username[:150]) or "anonymous",
        )


def password_sign_in(request: HttpRequest, *, username: str, password: str) -> User:
    """Check a username-or-email and password (django-axes counts the failures). Returns the user.

    Raises SignInError with the one message for unknown names and wrong passwords alike; a
    suspended account is named only to someone who knows its password.
    """
    user = authenticate(request, username=username, password=password)
    if user is not None:
        return user
    reason, known = getattr(request, REFUSAL_ATTRIBUTE, ("locked_out", None))
    if getattr(request, "axes_locked_out", False):
        reason = "locked_out"
    _audit_failure(request, attempted_username(request, {"username": username}), reason, known)
    if reason == "inactive":
        raise SignInError(ACCOUNT_SUSPENDED, code="inactive")
    raise SignInError(INVALID_CREDENTIALS, code="invalid_login")


def refuse_local_sign_in(request: HttpRequest, user: User) -> None:
    """While an upstream IdP is enforced, only super-admins may use a password (break-glass).

    Everyone else gets the answer a wrong password gets, so this page is no password oracle.
    """
    _audit_failure(request, user.username, "local_sign_in_disabled", user)
    raise SignInError(INVALID_CREDENTIALS, code="local_sign_in_disabled")


def user_has_totp(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def user_has_passkey(user: User) -> bool:
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()


def user_has_second_factor(user: User) -> bool:
    """An authenticator app or a passkey (recovery codes alone are a fallback, not a factor)."""
    return user_has_totp(user) or user_has_passkey(user)


def second_factor_required(user: User) -> bool:
    """Must this person pass a second factor to sign in at all? Staff always (a password alone
    never opens a session that holds staff powers); everyone when the policy says so."""
    return user.is_staff or user.is_superuser or sign_in_policy().mfa_required


def first_factor_passed(request: HttpRequest, user: User, *, backend: str, method: str, next_url: str) -> str:
    """The person proved who they are once. Returns where to send them: the second-factor
    prompt, enrolment (staff, or a policy that wants a factor they do not have yet: the sign-in
    completes only once a factor is set up), or `next_url`."""
    next_url = safe_next(next_url)
    if request.user.is_authenticated and request.user.pk != user.pk:
        # Someone else signs in on this browser: the previous person's session ends first.
        sign_out(request)
    has_factor = user_has_second_factor(user)
    if not has_factor and not second_factor_required(user):
        complete_sign_in(request, user, backend=backend, method=method)
        return next_url
    # A fresh session key for the pending state: nothing from before the password carries over.
    request.session.cycle_key()
    pending = PendingSignIn(
        user_id=str(user.pk),
        backend=backend,
        method=method,
        next_url=next_url,
        started=time.time(),
        enrol=not has_factor,
    )
    request.session[PENDING_KEY] = asdict(pending)
    return reverse("portal:totp_setup") if pending.enrol else reverse("portal:mfa")


def pending_sign_in(request: HttpRequest) -> tuple[PendingSignIn, User] | None:
    """The pending sign-in of this session and its user, if one is under way and not expired."""
    data = request.session.get(PENDING_KEY)
    if not data:
        return None
    pending = PendingSignIn(**data)
    if time.time() - pending.started > settings.PORTAL_MFA_PENDING_SECONDS:
        del request.session[PENDING_KEY]
        return None
    user = User.objects.filter(pk=pending.user_id).first()
    if user is None or not user.is_active:
        del request.session[PENDING_KEY]
        return None
    return pending, user


def pending_sign_in_cancel(request: HttpRequest) -> None:
    request.session.pop(PENDING_KEY, None)


def _oldest_live_session() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(seconds=sign_in_policy().session_lifetime_seconds)


def complete_sign_in(request: HttpRequest, user: User, *, backend: str, method: str, device: Any | None = None) -> None:
    """Log the user in (the one call to Django's login()) and record the session."""
    request.session.pop(PENDING_KEY, None)
    login(request, user, backend=backend)
    if device is not None:
        otp_login(request, device)
    request.session[METHOD_KEY] = method
    request.session[LAST_SEEN_KEY] = request.session[SIGNED_IN_AT_KEY] = int(time.time())
    # The cookie lives as long as the policy's lifetime (not SESSION_COOKIE_AGE, its default);
    # SessionIdleTimeoutMiddleware ends the session at that age from sign-in whatever the cookie says.
    request.session.set_expiry(sign_in_policy().session_lifetime_seconds)
    if not request.session.session_key:
        request.session.save()
    with transaction.atomic():
        # Rows of sessions that have expired on their own since (the store forgets them silently).
        PortalSession.objects.filter(user=user, created__lt=_oldest_live_session()).delete()
        PortalSession.objects.update_or_create(
            session_key=request.session.session_key,
            defaults={
                "user": user,
                "method": method[:64],
                "ip": client_ip(request),
                "user_agent": request.META.get("HTTP_USER_AGENT", "")[:255],
            },
        )
        audit_record(actor=user, action="portal.login.success", target=user, after={"method": method})


# --- Second factor --------------------------------------------------------------------------


def _verify_code(user: User, code: str) -> Any | None:
    """The confirmed device that accepts `code` (a TOTP code or a recovery code), if any."""
    code = "".join(code.split())
    if not code:
        return None
    if code.isdigit() and len(code) == 6:
        devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
        if devices and not any(device.verify_is_allowed()[0] for device in devices):
            raise SignInError(THROTTLED, code="throttled")
        for device in devices:
            with transaction.atomic():
                locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
                if locked.verify_token(code):
                    return locked
        return None
    for device in StaticDevice.objects.filter(user=user, confirmed=True):
        with transaction.atomic():
            locked = StaticDevice.objects.select_for_update().get(pk=device.pk)
            if locked.verify_token(code.lower()):
                return locked
    return None


def mfa_verify(request: HttpRequest, *, code: str) -> str:
    """Check the second factor of the pending sign-in (or a step-up of a signed-in staff user).

    Returns where to go next; raises SignInError. Each code works once (django-otp remembers
    the last time step a TOTP device accepted; recovery codes are deleted when used).
    """
    current = pending_sign_in(request)
    stepping_up = current is None and request.user.is_authenticated
    if current is None and not stepping_up:
        raise SignInError(PENDING_EXPIRED, code="pending_expired")
    user = request.user if stepping_up else current[1]
    if is_locked_out(request, user):
        request.axes_locked_out = True
        raise SignInError(INVALID_CODE, code="locked_out")
    device = _verify_code(user, code)
    if device is None:
        count_failure(request, user)
        with transaction.atomic():
            audit_record(actor=user, action="portal.mfa.failure", target=user, after={"step_up": stepping_up})
        if not stepping_up:
            pending = current[0]
            pending.failures += 1
            if pending.failures >= settings.PORTAL_MFA_MAX_ATTEMPTS:
                pending_sign_in_cancel(request)
                raise SignInError(PENDING_EXPIRED, code="too_many_codes")
            request.session[PENDING_KEY] = asdict(pending)
        raise SignInError(INVALID_CODE, code="invalid_code")
    kind = "recovery" if isinstance(device, StaticDevice) else "totp"
    with transaction.atomic():
        audit_record(actor=user, action="portal.mfa.success", target=user, after={"device": kind})
    if stepping_up:
        otp_login(request, device)
        request.session[METHOD_KEY] = f"{request.session.get(METHOD_KEY, 'password')}+{kind}"
        return safe_next(request.GET.get("next") or request.POST.get("next"))
    pending = current[0]
    complete_sign_in(request, user, backend=pending.backend, method=f"{pending.method}+{kind}", device=device)
    return pending.next_url


def _second_factor_target(request: HttpRequest) -> tuple[Any, User, bool]:
    """(pending sign-in or None, its user or the signed-in user, stepping up)."""
    current = pending_sign_in(request)
    if current is not None:
        return current[0], current[1], False
    if request.user.is_authenticated:
        return None, request.user, True
    raise SignInError(PENDING_EXPIRED, code="pending_expired")


def passkey_verify(request: HttpRequest, *, credential_json: str) -> str:
    """The second factor by passkey: like `mfa_verify`, for a WebAuthn assertion."""
    pending, user, stepping_up = _second_factor_target(request)
    if is_locked_out(request, user):
        request.axes_locked_out = True
        raise SignInError(INVALID_CODE, code="locked_out")
    try:
        with transaction.atomic():
            device = passkeys.authenticate(request, user, credential_json=credential_json)
    except passkeys.PasskeyError as error:
        count_failure(request, user)
        with transaction.atomic():
            audit_record(
                actor=user,
                action="portal.mfa.failure",
                target=user,
                after={"device": "passkey", "step_up": stepping_up},
            )
        raise SignInError(str(error), code="passkey_failed") from error
    with transaction.atomic():
        audit_record(actor=user, action="portal.mfa.success", target=user, after={"device": "passkey"})
    if stepping_up:
        otp_login(request, device)
        request.session[METHOD_KEY] = f"{request.session.get(METHOD_KEY, 'password')}+passkey"
        return safe_next(request.POST.get("next"))
    complete_sign_in(request, user, backend=pending.backend, method=f"{pending.method}+passkey", device=device)
    return pending.next_url


# --- Signing out ------------------------------------------------------------------------------


def _session_store() -> type[SessionBase]:
    return import_string(settings.SESSION_ENGINE + ".SessionStore")


def sign_out(request: HttpRequest) -> None:
    """End this portal session (the view sends the apps' LogoutRequests)."""
    user = request.user if request.user.is_authenticated else None
    session_key = request.session.session_key
    if user is not None:
        with transaction.atomic():
            audit_record(actor=user, action="portal.logout", target=user)
            if session_key:
                PortalSession.objects.filter(session_key=session_key).delete()
    logout(request)


def sign_out_everywhere(*, actor: User | None, user: User) -> int:
    """End every portal session of `user` (this one included); returns how many were ended."""
    store = _session_store()
    sessions = list(PortalSession.objects.filter(user=user))
    for session in sessions:
        store(session_key=session.session_key).delete()
    with transaction.atomic():
        PortalSession.objects.filter(pk__in=[session.pk for session in sessions]).delete()
        audit_record(actor=actor, action="portal.logout_everywhere", target=user, after={"sessions": len(sessions)})
        sign_out_participants(user=user, session_key=None, since=None, actor_label="logout_everywhere")
    return len(sessions)


def end_sessions(*, user: User, actor_label: str, matching: Callable[[str], bool]) -> int:
    """End the portal sessions of `user` whose key `matching` accepts (a SAML back-channel logout
    names them by SessionIndex); returns how many were ended."""
    store = _session_store()
    sessions = [session for session in PortalSession.objects.filter(user=user) if matching(session.session_key)]
    for session in sessions:
        store(session_key=session.session_key).delete()
    with transaction.atomic():
        PortalSession.objects.filter(pk__in=[session.pk for session in sessions]).delete()
        for session in sessions:
            sign_out_participants(user=user, session_key=session.session_key, since=None, actor_label=actor_label)
        if sessions:
            audit_record(
                actor=user,
                actor_label=actor_label,
                action="portal.logout",
                target=user,
                after={"sessions": len(sessions), "by": actor_label},
            )
    return len(sessions)


def forget_session(session_key: str) -> None:
    PortalSession.objects.filter(session_key=session_key).delete()


# --- Confirming identity again before a sensitive action ------------------------------------

REAUTH_AT_KEY = "portal_reauth_at"
# When this session's password was last typed again (enrolling a factor needs that; enrolment.py).
PASSWORD_CONFIRMED_AT_KEY = "portal_password_confirmed_at"  # noqa: S105 - a session key, not a password
REAUTH_FAILED = "That did not match. Enter your password or a current code from your authenticator app."
PASSWORD_FAILED = "That is not your password. Enter the password you sign in with."  # noqa: S105 - a message


def last_authenticated_at(request: HttpRequest) -> int:
    """When this session last proved who it is: the sign-in, or a later confirmation."""
    return max(int(request.session.get(SIGNED_IN_AT_KEY, 0)), int(request.session.get(REAUTH_AT_KEY, 0)))


def confirm_identity(request: HttpRequest, *, secret: str) -> None:
    """Accept the signed-in user's password, TOTP code or recovery code; raise SignInError otherwise.

    Failures count towards the same lockout as the sign-in page, so this prompt is no oracle.
    """
    user = request.user
    _refuse_while_locked_out(request, user, REAUTH_FAILED)
    secret = secret.strip()
    password = bool(secret) and user.has_usable_password() and user.check_password(secret)
    accepted = password or (bool(secret) and user_has_totp(user) and _verify_code(user, secret) is not None)
    _record_confirmation(request, user, accepted=accepted, password=password, purpose="sensitive_action")
    if not accepted:
        raise SignInError(REAUTH_FAILED, code="reauth_failed")


def confirm_password(request: HttpRequest, *, password: str) -> None:
    """Accept the signed-in user's password typed again (before enrolling a second factor: a
    code or a passkey would not do, since whoever holds a stolen session can add their own).

    Failures count towards the same lockout as the sign-in page; raises SignInError.
    """
    user = request.user
    _refuse_while_locked_out(request, user, PASSWORD_FAILED)
    accepted = bool(password) and user.has_usable_password() and user.check_password(password)
    _record_confirmation(request, user, accepted=accepted, password=accepted, purpose="enrolment")
    if not accepted:
        raise SignInError(PASSWORD_FAILED, code="reauth_failed")


def _refuse_while_locked_out(request: HttpRequest, user: User, message: str) -> None:
    if is_locked_out(request, user):
        request.axes_locked_out = True
        raise SignInError(message, code="locked_out")


def _record_confirmation(request: HttpRequest, user: User, *, accepted: bool, password: bool, purpose: str) -> None:
    if not accepted:
        count_failure(request, user)
        with transaction.atomic():
            audit_record(actor=user, action="portal.reauth.failure", target=user, after={"purpose": purpose})
        return
    now = time.time()
    request.session[REAUTH_AT_KEY] = int(now)
    if password:
        # To the sub-second: a TOTP secret made before this moment is never the one confirmed.
        request.session[PASSWORD_CONFIRMED_AT_KEY] = now
    with transaction.atomic():
        audit_record(actor=user, action="portal.reauth.success", target=user, after={"purpose": purpose})


# --- Admin help for someone who cannot sign in -------------------------------------------------


def mfa_reset(*, actor: Any | None, user: User) -> dict[str, int]:
    """Remove every second factor of `user` (authenticator app, recovery codes, passkeys).

    They are asked to enrol again at their next sign-in when policy or their role requires a
    factor. Returns how many of each were removed; audited with the acting admin.
    """
    require_reach(actor, [user])
    with transaction.atomic():
        removed = {
            "totp": TOTPDevice.objects.filter(user=user).delete()[1].get(TOTPDevice._meta.label, 0),
            # Deleting the devices deletes their codes: count those from what the delete removed.
            "recovery_codes": StaticDevice.objects.filter(user=user).delete()[1].get(StaticToken._meta.label, 0),
            "passkeys": WebAuthnCredential.objects.filter(user=user).delete()[1].get(WebAuthnCredential._meta.label, 0),
        }
        audit_record(actor=actor, action="portal.mfa.reset", target=user, after=removed)
    return removed
