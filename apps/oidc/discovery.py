"""The OpenID Provider metadata of a connector's issuer (OpenID Connect Discovery 1.0, 3)."""

from apps.connectors import idp_urls
from apps.connectors.models import Connector
from apps.oidc import keys
from apps.oidc.claims import CLAIM_SCOPES
from apps.oidc.session import ACR_VALUES


def provider_metadata(connector: Connector) -> dict:
    oidc = connector.oidc
    urls = idp_urls.oidc_urls(connector)
    mapped = sorted({claim for claim in CLAIM_SCOPES if CLAIM_SCOPES[claim] in oidc.allowed_scopes})
    grant_types = ["authorization_code"] + (["refresh_token"] if oidc.refresh_token_lifetime_seconds else [])
    return {
        "issuer": urls["issuer"],
        **{name: urls[name] for name in idp_urls.OIDC_ENDPOINTS},
        "scopes_supported": list(oidc.allowed_scopes),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [keys.ALGORITHM],
        "token_endpoint_auth_methods_supported": (
            ["none"] if oidc.is_public else ["client_secret_basic", "client_secret_post"]
        ),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", *mapped],
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": ["none", "login"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "authorization_response_iss_parameter_supported": True,
    }
