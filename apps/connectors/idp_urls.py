"""The portal's IdP URLs for a connector: one source for the console, the API, the metadata and the
protocol code.

They embed the slug, which is why it never changes, and are fixed when the connector is created:
admins have pasted them into apps. Every endpoint of a connector is derived from its stored SSO URL
rather than today's PORTAL_BASE_URL, so that they all stay on the host the app was configured with.
"""

from django.conf import settings

from apps.connectors.models import Connector


def idp_base(slug: str) -> str:
    return f"{settings.PORTAL_BASE_URL}/saml/idp/{slug}"


def idp_entity_id(slug: str) -> str:
    """A new connector's entity ID: its metadata URL, so that an SP can fetch what it is told to trust."""
    return f"{idp_base(slug)}/metadata"


def idp_sso_url(slug: str) -> str:
    """A new connector's SSO URL."""
    return f"{idp_base(slug)}/sso"


def base_url(connector: Connector) -> str:
    if connector.sso_url.endswith("/sso"):
        return connector.sso_url[: -len("/sso")]
    return idp_base(connector.slug)


def sso_url(connector: Connector) -> str:
    return connector.sso_url


def slo_url(connector: Connector) -> str:
    return f"{base_url(connector)}/slo"


def backchannel_slo_url(connector: Connector) -> str:
    """Where apps send SOAP LogoutRequests (back-channel)."""
    return f"{base_url(connector)}/slo/soap"


def metadata_url(connector: Connector) -> str:
    return f"{base_url(connector)}/metadata"


# --- OpenID Connect -----------------------------------------------------------------------------
# An OIDC connector is an issuer of its own: its entity ID is the issuer URL and its SSO URL the
# authorization endpoint; every other endpoint hangs below the issuer (OpenID Connect Discovery 4).

OIDC_ENDPOINTS = {
    "authorization_endpoint": "authorize",
    "token_endpoint": "token",
    "userinfo_endpoint": "userinfo",
    "jwks_uri": "jwks",
    "introspection_endpoint": "introspect",
    "revocation_endpoint": "revoke",
    "end_session_endpoint": "logout",
}


def oidc_issuer_for(slug: str) -> str:
    """A new OIDC connector's issuer."""
    return f"{settings.PORTAL_BASE_URL}/oidc/{slug}"


def oidc_issuer(connector: Connector) -> str:
    return connector.idp_entity_id


def oidc_endpoint(connector: Connector, name: str) -> str:
    return f"{oidc_issuer(connector)}/{OIDC_ENDPOINTS[name]}"


def oidc_discovery_url(connector: Connector) -> str:
    return f"{oidc_issuer(connector)}/.well-known/openid-configuration"


def oidc_urls(connector: Connector) -> dict[str, str]:
    """What an admin pastes into the app: the issuer, its discovery document and each endpoint."""
    urls = {"issuer": oidc_issuer(connector), "discovery": oidc_discovery_url(connector)}
    urls.update({name: oidc_endpoint(connector, name) for name in OIDC_ENDPOINTS})
    return urls
