"""The one place that builds django-oauth-toolkit's oauthlib server (as apps.saml_idp.server is
for pysaml2): oauthlib's OpenID Connect server with apps.oidc.validator, per-connector access-token
lifetimes, and the connector of the endpoint passed to the validator in a header no client can
send. Views hand Django requests to `core()` and carry its answers back."""

import threading
from typing import Any

from django.http import HttpRequest
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.settings import oauth2_settings
from oauthlib.openid import Server

from apps.oidc.validator import CONNECTOR_HEADER, PortalOAuth2Validator, access_token_lifetime


class PortalOAuthLibCore(OAuthLibCore):
    """The toolkit's Django <-> oauthlib edge, told which connector's endpoint a request reached."""

    def __init__(self, server: Any = None) -> None:
        if server is None:
            kwargs = {**oauth2_settings.server_kwargs, "token_expires_in": access_token_lifetime}
            server = Server(PortalOAuth2Validator(), **kwargs)
        super().__init__(server)

    def extract_headers(self, request: HttpRequest) -> dict:
        headers = super().extract_headers(request)
        headers[CONNECTOR_HEADER] = getattr(request, "oidc_connector_slug", "")
        return headers

    def oauthlib_params(self, request: HttpRequest) -> tuple[str, str, str, dict]:
        return self._extract_params(request)

    def create_introspect_response(self, request: HttpRequest) -> tuple[dict, str, int]:
        uri, http_method, body, headers = self._extract_params(request)
        return self.server.create_introspect_response(uri, http_method, body, headers)


_core: PortalOAuthLibCore | None = None
_lock = threading.Lock()


def core(request: HttpRequest, connector_slug: str) -> PortalOAuthLibCore:
    """The process's server (the validator holds no state), with `request` marked as reaching
    `connector_slug`'s endpoints."""
    global _core
    request.oidc_connector_slug = connector_slug
    if _core is None:
        with _lock:
            if _core is None:
                _core = PortalOAuthLibCore()
    return _core
