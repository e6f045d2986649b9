"""ID tokens that come back to the portal (id_token_hint at the authorization and logout
endpoints): verified against the connector's own keys, RS256 only, so that neither `alg: none`
nor an HMAC keyed with the public key (algorithm confusion) is accepted."""

import json
from dataclasses import dataclass

from jwcrypto import jws, jwt
from jwcrypto.common import JWException

from apps.connectors.models import Connector
from apps.oidc import keys

MAX_HINT_LENGTH = 8192


@dataclass(frozen=True)
class VerifiedHint:
    sub: str
    sid: str
    aud: list[str]
    claims: dict


def verify_id_token_hint(connector: Connector, token: str) -> VerifiedHint | None:
    """The claims of an ID token this connector issued, expired or not (a logout may come late);
    None when it is not one: another issuer or audience, a bad signature, another algorithm."""
    if not token or len(token) > MAX_HINT_LENGTH:
        return None
    try:
        parsed = jwt.JWT(
            jwt=token,
            key=keys.verification_keys(connector),
            algs=[keys.ALGORITHM],
            check_claims={"iss": connector.idp_entity_id},
            expected_type="JWS",
        )
        claims = json.loads(parsed.claims)
    except (JWException, jws.InvalidJWSSignature, ValueError, TypeError, KeyError):
        return None
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    if connector.oidc.client_id not in audiences or not isinstance(claims.get("sub"), str):
        return None
    return VerifiedHint(sub=claims["sub"], sid=str(claims.get("sid", "")), aud=audiences, claims=claims)


def id_token_hint_subject(connector: Connector, token: str) -> str | None:
    hint = verify_id_token_hint(connector, token)
    return hint.sub if hint else None
