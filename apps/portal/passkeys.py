"""WebAuthn (passkeys and security keys) at the edge: options out, credentials in, through py_webauthn.

The relying party is PORTAL_BASE_URL: its host name is the RP ID and its origin the only origin
accepted. Each ceremony's challenge lives in the session, for one use and a few minutes.
"""

import json
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from apps.directory.models import User
from apps.portal.models import WebAuthnCredential

CHALLENGE_KEY = "portal_webauthn_challenge"
CHALLENGE_SECONDS = 300


class PasskeyError(ValueError):
    """The browser's answer did not verify (or no ceremony was under way)."""


def relying_party() -> tuple[str, str]:
    parts = urlsplit(settings.PORTAL_BASE_URL)
    return parts.hostname or "localhost", f"{parts.scheme}://{parts.netloc}"


def _remember(request: HttpRequest, purpose: str, challenge: bytes) -> None:
    request.session[CHALLENGE_KEY] = {"p": purpose, "c": bytes_to_base64url(challenge), "t": time.time()}


def _take_challenge(request: HttpRequest, purpose: str) -> bytes:
    pending = request.session.pop(CHALLENGE_KEY, None)
    if not pending or pending.get("p") != purpose or time.time() - pending.get("t", 0) > CHALLENGE_SECONDS:
        raise PasskeyError("This passkey request expired. Please try again.")
    return base64url_to_bytes(pending["c"])


def _descriptors(user: User) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential.credential_id))
        for credential in WebAuthnCredential.objects.filter(user=user, confirmed=True)
    ]


def _parse(credential_json: str) -> dict[str, Any]:
    try:
        credential = json.loads(credential_json)
    except (TypeError, ValueError) as exc:
        raise PasskeyError("The browser sent no usable passkey answer.") from exc
    if not isinstance(credential, dict):
        raise PasskeyError("The browser sent no usable passkey answer.")
    return credential


def registration_options(request: HttpRequest, user: User) -> str:
    """Options for navigator.credentials.create(), as JSON; the challenge goes into the session."""
    rp_id, _origin = relying_party()
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name="idp-portal",
        user_id=user.pk.bytes,
        user_name=user.username,
        user_display_name=user.get_full_name() or user.username,
        exclude_credentials=_descriptors(user),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED
        ),
    )
    _remember(request, "register", options.challenge)
    return options_to_json(options)


def register(request: HttpRequest, user: User, *, credential_json: str, name: str) -> WebAuthnCredential:
    rp_id, origin = relying_party()
    credential = _parse(credential_json)
    challenge = _take_challenge(request, "register")
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origin
        )
    except WebAuthnException as exc:
        raise PasskeyError("The passkey could not be verified. Please try again.") from exc
    transports = credential.get("response", {}).get("transports") or []
    return WebAuthnCredential.objects.create(
        user=user,
        name=(name.strip() or "Passkey")[:64],
        confirmed=True,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        transports=[str(transport) for transport in transports][:8],
    )


def authentication_options(request: HttpRequest, user: User) -> str:
    """Options for navigator.credentials.get() with the user's passkeys, as JSON."""
    rp_id, _origin = relying_party()
    options = generate_authentication_options(
        rp_id=rp_id, allow_credentials=_descriptors(user), user_verification=UserVerificationRequirement.PREFERRED
    )
    _remember(request, "authenticate", options.challenge)
    return options_to_json(options)


def authenticate(request: HttpRequest, user: User, *, credential_json: str) -> WebAuthnCredential:
    """The user's passkey that signed this ceremony's challenge; raises PasskeyError.

    A signature counter that does not move forward (a cloned authenticator) is refused by
    py_webauthn; the new counter is stored.
    """
    rp_id, origin = relying_party()
    credential = _parse(credential_json)
    challenge = _take_challenge(request, "authenticate")
    device = WebAuthnCredential.objects.filter(
        user=user, confirmed=True, credential_id=str(credential.get("rawId") or credential.get("id") or "")
    ).first()
    if device is None:
        raise PasskeyError("That passkey is not registered to this account.")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=base64url_to_bytes(device.public_key),
            credential_current_sign_count=device.sign_count,
        )
    except WebAuthnException as exc:
        raise PasskeyError("The passkey could not be verified. Please try again.") from exc
    device.sign_count = verified.new_sign_count
    device.last_used_at = timezone.now()
    device.save(update_fields=["sign_count", "last_used_at"])
    return device
