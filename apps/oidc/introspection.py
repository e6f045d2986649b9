"""Token introspection (RFC 7662) answers: what a client may learn about one of its own tokens."""

import hashlib
from typing import Any

from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from apps.oidc import claims as claim_rules
from apps.oidc import selectors

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def _find(checksum: str, hint: str | None, client: Any) -> tuple[str, Any] | None:
    order = ("refresh_token", "access_token") if hint == "refresh_token" else ("access_token", "refresh_token")
    for kind in order:
        model = AccessToken if kind == "access_token" else RefreshToken
        found = model.objects.select_related("user").filter(token_checksum=checksum, application=client).first()
        if found is not None:
            return kind, found
    return None


def token_claims(token: str, hint: str | None, *, client: Any) -> dict | None:
    """The claims of an active token of `client`, or None: unknown, another client's, expired,
    revoked, or of a user who may no longer sign in to the connector all read as inactive."""
    if client is None or not token or len(token) > 4096:
        return None
    found = _find(hashlib.sha256(token.encode()).hexdigest(), hint, client)
    if found is None:
        return None
    kind, row = found
    if kind == "access_token":
        if row.is_expired():
            return None
        expires, scope = row.expires, row.scope
    else:
        if row.revoked is not None or row.access_token_id is None:
            return None
        session = selectors.session_by_family(row.token_family)
        if session is None or session.ended is not None:
            return None
        expires, scope = None, row.access_token.scope
    user = row.user
    connector = client.connector
    if user is None or selectors.may_sign_in(connector, user):
        return None
    properties = selectors.claim_properties_of(user, [])
    claims = {
        "scope": scope,
        "client_id": client.client_id,
        "username": user.username,
        "token_type": "Bearer" if kind == "access_token" else "refresh_token",
        "iat": int(row.created.timestamp()),
        "sub": claim_rules.subject(properties, client.oidc.sub_source),
        "aud": client.client_id,
        "iss": connector.idp_entity_id,
    }
    if expires is not None:
        claims["exp"] = int(expires.timestamp())
    return claims
