"""Enrolling a second factor (an authenticator app, a passkey) and managing one's factors.

A factor set up during a pending sign-in (policy or a staff role asked for one the person did not
have) completes that sign-in; one set up by a signed-in person marks their session as verified.

Enrolling needs the first factor given moments ago in this session (`enrolment_confirmed_since`):
otherwise whoever holds a session (a stolen cookie, a browser left open) could add a factor of
their own, and with it keep a staff account's powers. Replacing a factor needs the old one too
(the session must be verified first: the views send it to the code prompt).
"""

import time

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.services import audit_record
from apps.directory.models import User
from apps.portal import passkeys
from apps.portal.models import WebAuthnCredential
from apps.portal.services import (
    INVALID_CODE,
    PASSWORD_CONFIRMED_AT_KEY,
    SIGNED_IN_AT_KEY,
    SignInError,
    complete_sign_in,
    pending_sign_in,
    user_has_passkey,
    user_has_second_factor,
)

ENROLMENT_NEEDS_CONFIRMATION = "Enter your password again to set up a second factor."


# --- Who may enrol --------------------------------------------------------------------------


def enrolment_confirmed_since(request: HttpRequest, user: User) -> float | None:
    """Since when this session may enrol a factor for `user`, or None: ask for the password again.

    - During a pending sign-in that waits for enrolment: since its first factor (typed moments
      ago in this very flow; the pending state lasts PORTAL_MFA_PENDING_SECONDS).
    - Signed in (and, when the account has a factor already, verified with it this session):
      since the password was typed again (services.confirm_password, or the console's
      prompt answered with the password), for PORTAL_MFA_PENDING_SECONDS, used up by the enrolment.
    - Signed in to an account with no password here (it signs in through an upstream IdP): since
      that sign-in, for PORTAL_MFA_PENDING_SECONDS (signing in again there is the confirmation).
    """
    current = pending_sign_in(request)
    if current is not None:
        pending, pending_user = current
        return pending.started if pending.enrol and pending_user.pk == user.pk else None
    if not (request.user.is_authenticated and request.user.pk == user.pk):
        return None
    if user_has_second_factor(user) and not request.user.is_verified():
        # Replacing or adding to a factor: this session must have passed the current one.
        return None
    key = PASSWORD_CONFIRMED_AT_KEY if user.has_usable_password() else SIGNED_IN_AT_KEY
    since = request.session.get(key)
    if not since or time.time() - since > settings.PORTAL_MFA_PENDING_SECONDS:
        return None
    return float(since)


def _enrolment_allowed_since(request: HttpRequest, user: User) -> float:
    since = enrolment_confirmed_since(request, user)
    if since is None:
        raise SignInError(ENROLMENT_NEEDS_CONFIRMATION, code="confirm_password")
    return since


def _enrolment_done(request: HttpRequest) -> None:
    # The next factor asks for the password again.
    request.session.pop(PASSWORD_CONFIRMED_AT_KEY, None)


def _device_being_set_up(user: User, since: float) -> TOTPDevice | None:
    """The unconfirmed device made since the confirmation: a secret shown before it (perhaps to
    someone else holding the session) never becomes the account's factor."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None or device.created_at is None or device.created_at.timestamp() < since:
        return None
    return device


# --- Enrolment ------------------------------------------------------------------------------


def totp_device_begin(request: HttpRequest, user: User) -> TOTPDevice:
    """The user's unconfirmed TOTP device: the one being set up, or a new secret (older
    unconfirmed ones are dropped). Raises SignInError("confirm_password") without a confirmation."""
    since = _enrolment_allowed_since(request, user)
    device = _device_being_set_up(user, since)
    if device is None:
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def _new_recovery_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(settings.PORTAL_RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def totp_device_confirm(request: HttpRequest, *, user: User, code: str) -> list[str]:
    """Confirm the device being set up with a code from the app; returns fresh recovery codes.

    During a pending sign-in (policy asked for a factor the user did not have) this also
    completes the sign-in; for a signed-in user it marks the session as verified.
    """
    device = _device_being_set_up(user, _enrolment_allowed_since(request, user))
    if device is None:
        raise SignInError("Start the set-up again: the secret expired.", code="no_device")
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6 and device.verify_token(code)):
        with transaction.atomic():
            audit_record(actor=user, action="portal.mfa.failure", target=user, after={"enrolment": True})
        raise SignInError(INVALID_CODE, code="invalid_code")
    with transaction.atomic():
        # One authenticator app per account: a new one replaces the old.
        TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _new_recovery_codes(user)
        audit_record(actor=user, action="portal.mfa.enrol", target=user, after={"device": "totp"})
    _enrolment_done(request)
    current = pending_sign_in(request)
    if current is not None and current[1].pk == user.pk:
        pending = current[0]
        complete_sign_in(request, user, backend=pending.backend, method=f"{pending.method}+totp", device=device)
        request.session["portal_after_codes"] = pending.next_url
    elif request.user.is_authenticated:
        otp_login(request, device)
    return codes


def passkey_enrol(request: HttpRequest, *, user: User, credential_json: str, name: str) -> list[str]:
    """Register a passkey; returns new recovery codes when the user had none (else []).

    Completes a pending sign-in that was waiting for enrolment, like `totp_device_confirm`.
    """
    _enrolment_allowed_since(request, user)
    try:
        with transaction.atomic():
            device = passkeys.register(request, user, credential_json=credential_json, name=name)
            codes = [] if StaticDevice.objects.filter(user=user).exists() else _new_recovery_codes(user)
            audit_record(
                actor=user, action="portal.mfa.enrol", target=user, after={"device": "passkey", "name": device.name}
            )
    except passkeys.PasskeyError as error:
        raise SignInError(str(error), code="passkey_failed") from error
    _enrolment_done(request)
    current = pending_sign_in(request)
    if current is not None and current[1].pk == user.pk:
        pending = current[0]
        complete_sign_in(request, user, backend=pending.backend, method=f"{pending.method}+passkey", device=device)
        request.session["portal_after_codes"] = pending.next_url
    elif request.user.is_authenticated:
        otp_login(request, device)
    return codes


@transaction.atomic
def passkey_remove(*, actor: User, user: User, credential_id: int) -> None:
    deleted, _ = WebAuthnCredential.objects.filter(user=user, pk=credential_id).delete()
    if deleted:
        audit_record(actor=actor, action="portal.mfa.remove", target=user, after={"device": "passkey"})
    if not user_has_second_factor(user):
        StaticDevice.objects.filter(user=user).delete()


@transaction.atomic
def recovery_codes_regenerate(*, user: User) -> list[str]:
    codes = _new_recovery_codes(user)
    audit_record(actor=user, action="portal.mfa.recovery_codes", target=user)
    return codes


@transaction.atomic
def totp_device_remove(*, actor: User, user: User) -> None:
    """Remove the authenticator app (and the recovery codes, unless a passkey remains).

    Staff, and everyone under a policy that requires a second factor, are asked to enrol again
    at their next staff page or sign-in.
    """
    TOTPDevice.objects.filter(user=user).delete()
    if not user_has_passkey(user):
        StaticDevice.objects.filter(user=user).delete()
    audit_record(actor=actor, action="portal.mfa.remove", target=user, after={"device": "totp"})
