"""Writes of the OpenID Connect provider: the toolkit's application row per connector, sign-in
sessions (one per authorization code), ending them and revoking what they issued, and the audit
trail of every decision."""

import hashlib
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_refresh_token_model,
)

from apps.audit.services import audit_record
from apps.connectors.models import Connector, OidcSettings
from apps.directory.models import User
from apps.oidc.models import OidcSession
from apps.oidc.session import SignIn

Application = get_application_model()
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def code_checksum(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _actor(user: Any) -> User | None:
    return user if isinstance(user, User) and user.pk else None


def audit(action: str, *, connector: Connector | None, user: Any = None, **details: Any) -> None:
    """One audit row of the provider (`oidc.<what>`), on the connector, in its own transaction."""
    with transaction.atomic():
        audit_record(
            actor=_actor(user),
            actor_label="" if _actor(user) else "oidc",
            action=action,
            target=connector,
            after={key: value for key, value in details.items() if value not in (None, "")},
        )


def application_for(oidc: OidcSettings) -> Any:
    """django-oauth-toolkit's Application row for the connector's client, made on first use.

    It anchors the toolkit's grants and tokens; everything else about the client (type, secrets,
    redirect URIs, scopes) is read from the connector's settings by apps.oidc.validator.
    """
    application = Application.objects.filter(client_id=oidc.client_id).first()
    if application is not None:
        return application
    try:
        with transaction.atomic():
            return Application.objects.create(
                client_id=oidc.client_id,
                name=oidc.connector.name[:255],
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                client_secret="",
                hash_client_secret=False,
                algorithm=Application.RS256_ALGORITHM,
                skip_authorization=True,
            )
    except IntegrityError:
        return Application.objects.get(client_id=oidc.client_id)


def session_start(*, connector: Connector, user: User, sign_in: SignIn, code: str) -> OidcSession:
    return OidcSession.objects.create(
        connector=connector,
        user=user,
        sid=sign_in.sid,
        auth_time=sign_in.auth_time,
        amr=sign_in.amr,
        acr=sign_in.acr,
        code_checksum=code_checksum(code),
    )


def session_link_tokens(session: OidcSession, *, token_family: Any) -> None:
    session.code_used = timezone.now()
    session.token_family = token_family
    session.save(update_fields=["code_used", "token_family"])


def _revoke_tokens(session: OidcSession) -> None:
    if session.token_family is not None:
        RefreshToken.revoke_family(session.token_family)


def session_end(session: OidcSession, *, reason: str) -> None:
    """End a sign-in: its refresh tokens and access tokens stop working at once."""
    with transaction.atomic():
        _revoke_tokens(session)
        if session.ended is None:
            session.ended, session.ended_reason = timezone.now(), reason[:32]
            session.save(update_fields=["ended", "ended_reason"])


def code_reused(*, connector: Connector, code: str) -> bool:
    """A code presented again after its exchange: revoke every token it led to (RFC 6749 4.1.2)
    and audit. False when the code was never issued here."""
    session = OidcSession.objects.filter(connector=connector, code_checksum=code_checksum(code)).first()
    if session is None or session.code_used is None:
        return False
    session_end(session, reason="code_reused")
    audit("oidc.token.refused", connector=connector, user=session.user, reason="code_reused", tokens_revoked=True)
    return True


def refresh_token_reused(*, connector: Connector, token_family: Any, user: User) -> None:
    """A rotated refresh token came back: the toolkit revokes its family; the sign-in ends too."""
    session = OidcSession.objects.filter(token_family=token_family).first() if token_family else None
    if session is not None:
        session_end(session, reason="refresh_reused")
    audit("oidc.token.refused", connector=connector, user=user, reason="refresh_token_reused", tokens_revoked=True)


def sessions_end(sessions: Any, *, reason: str) -> list[OidcSession]:
    ended = []
    for session in sessions:
        session_end(session, reason=reason)
        ended.append(session)
    return ended
