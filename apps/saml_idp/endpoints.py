"""The IdP URLs of a connector, as fixed when it was created (admins have pasted them into apps)."""

from apps.connectors import idp_urls
from apps.connectors.models import Connector


def sso_url(connector: Connector) -> str:
    return connector.sso_url


def base_url(connector: Connector) -> str:
    # Derived from the stored SSO URL rather than today's PORTAL_BASE_URL, so that every endpoint
    # of one connector stays on the host the app was configured with.
    if connector.sso_url.endswith("/sso"):
        return connector.sso_url[: -len("/sso")]
    return idp_urls.idp_base(connector.slug)


def slo_url(connector: Connector) -> str:
    return f"{base_url(connector)}/slo"


def metadata_url(connector: Connector) -> str:
    return f"{base_url(connector)}/metadata"


def launch_url(connector: Connector) -> str:
    return f"{base_url(connector)}/launch"
