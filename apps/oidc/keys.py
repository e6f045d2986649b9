"""The ID-token signing keys: the portal's own signing keys (apps.saml_idp.keys, the same key page
and rotation as SAML) as JSON Web Keys. The JWKS publishes the active key, the next key ahead of
a rotation and, for a grace period, keys retired since, so that tokens signed just before a
rotation still verify.
"""

import datetime
import json
import threading
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from jwcrypto import jwk

from apps.common.pki import certificate_base64
from apps.connectors.models import Connector
from apps.saml_idp.keys import private_key_pem, published_keys, signing_key_for
from apps.saml_idp.models import KeyScope, KeyStatus, SigningKey

ALGORITHM = "RS256"

# Key material never changes for a given id, so these caches cannot go stale; which key signs is
# read from the database on every request.
_private: dict[UUID, jwk.JWK] = {}
_public: dict[UUID, dict] = {}
_lock = threading.Lock()


def _remember(cache: dict, key_id: UUID, value: object) -> None:
    with _lock:
        if len(cache) > 256:
            cache.clear()
        cache[key_id] = value


def public_jwk(signing_key: SigningKey) -> dict:
    """The public half as a JWK, with its certificate (x5c) and `kid` (its RFC 7638 thumbprint)."""
    cached = _public.get(signing_key.pk)
    if cached is not None:
        return cached
    key = jwk.JWK.from_pem(signing_key.certificate_pem.encode())
    data = json.loads(key.export_public())
    data.update(
        {
            "kid": key.thumbprint(),
            "use": "sig",
            "alg": ALGORITHM,
            "x5c": [certificate_base64(signing_key.certificate_pem)],
        }
    )
    _remember(_public, signing_key.pk, data)
    return data


def private_jwk(signing_key: SigningKey) -> jwk.JWK:
    cached = _private.get(signing_key.pk)
    if cached is not None:
        return cached
    key = jwk.JWK.from_pem(private_key_pem(signing_key).encode())
    key.update(kid=key.thumbprint(), use="sig", alg=ALGORITHM)
    _remember(_private, signing_key.pk, key)
    return key


def signing_jwk(connector: Connector) -> jwk.JWK:
    """The key that signs this connector's ID tokens right now."""
    return private_jwk(signing_key_for(connector))


def jwks_keys(connector: Connector, *, now: datetime.datetime | None = None) -> list[SigningKey]:
    """What the connector's JWKS lists: its own key or the portal's active and next keys, then the
    portal keys retired within OIDC_RETIRED_KEY_GRACE_SECONDS."""
    keys = published_keys(connector)
    if any(key.scope == KeyScope.CONNECTOR for key in keys):
        return keys
    since = (now or timezone.now()) - datetime.timedelta(seconds=settings.OIDC_RETIRED_KEY_GRACE_SECONDS)
    retired = SigningKey.objects.filter(scope=KeyScope.PORTAL, status=KeyStatus.RETIRED, retired__gte=since)
    return [*keys, *retired.order_by("-retired")]


def jwks(connector: Connector) -> dict:
    return {"keys": [public_jwk(key) for key in jwks_keys(connector)]}


def verification_keys(connector: Connector) -> jwk.JWKSet:
    """The keys an ID token of this connector may be signed with (for an id_token_hint)."""
    keyset = jwk.JWKSet()
    for key in jwks_keys(connector):
        keyset.add(jwk.JWK(**public_jwk(key)))
    return keyset
