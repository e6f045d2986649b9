"""OpenID Connect provider settings (apps.oidc on django-oauth-toolkit).

django-oauth-toolkit is configured only through its settings hooks: the validator and the
oauthlib backend are apps.oidc's subclasses, which read each connector's own settings (client
type, secrets, redirect URIs, scopes, token lifetimes) from apps.connectors.models.OidcSettings.
The values below are the toolkit's process-wide policy.
"""

from idp_portal.settings.env import env_int

# Largest value of one authorization request parameter, and of the whole query string; longer
# requests are refused with invalid_request before oauthlib parses them.
OIDC_MAX_PARAMETER_LENGTH = env_int("OIDC_MAX_PARAMETER_LENGTH", 2048)
OIDC_MAX_QUERY_LENGTH = env_int("OIDC_MAX_QUERY_LENGTH", 8192)
# A `state` or `nonce` seen before from the same client within this window is a replay.
OIDC_REPLAY_WINDOW_SECONDS = env_int("OIDC_REPLAY_WINDOW_SECONDS", 24 * 3600)
# Retired signing keys stay in the JWKS this long after a rotation, so that ID tokens signed just
# before it still verify at relying parties that fetch the key set again.
OIDC_RETIRED_KEY_GRACE_SECONDS = env_int("OIDC_RETIRED_KEY_GRACE_SECONDS", 24 * 3600)
# How long relying parties may cache the discovery document and the JWKS.
OIDC_JWKS_MAX_AGE_SECONDS = env_int("OIDC_JWKS_MAX_AGE_SECONDS", 300)
# After a client secret rotation the previous secret keeps working this long unless told otherwise.
OIDC_SECRET_OVERLAP_SECONDS = env_int("OIDC_SECRET_OVERLAP_SECONDS", 24 * 3600)
# The OIDC tracer (apps/oidc/tracer.py) keeps this many authorization requests per connector.
OIDC_TRACE_KEEP = env_int("OIDC_TRACE_KEEP", 50)

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OAUTH2_VALIDATOR_CLASS": "apps.oidc.validator.PortalOAuth2Validator",
    "OAUTH2_BACKEND_CLASS": "apps.oidc.server.PortalOAuthLibCore",
    "SCOPES": {
        "openid": "Sign you in",
        "profile": "Your name and username",
        "email": "Your email address",
        "groups": "Your groups",
        "offline_access": "Stay signed in to the app",
    },
    "DEFAULT_SCOPES": ["openid"],
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": env_int("OIDC_AUTHORIZATION_CODE_SECONDS", 60),
    # The toolkit's own refresh expiry is off: each connector's lifetime is enforced by the validator.
    "REFRESH_TOKEN_EXPIRE_SECONDS": None,
    "ROTATE_REFRESH_TOKEN": True,
    # A refresh token used twice revokes its whole family (RFC 9700 4.14.2).
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "client_secret_post", "none"],
    # Public clients must use PKCE with S256; the validator decides per client (is_pkce_required).
    # Read only by the toolkit's own views and forms, which the portal does not use: redirect URIs are
    # validated by apps.connectors.oidc_settings (https, or http on loopback for native apps).
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    # Tokens are stored as SHA-256 checksums only (RFC 9700 4): a database read gives no usable token.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    # The `iss` authorization-response parameter (RFC 9207); apps.oidc.authorize sets each
    # connector's own issuer in it.
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
}
