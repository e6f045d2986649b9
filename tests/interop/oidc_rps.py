"""Relying parties nobody here wrote, for the OpenID Connect matrix: Authlib's OAuth 2 client
(with its OIDC ID-token claims validation) and pyoidc (`oic`), each configured only from the
portal's discovery document and the client credentials the admin API handed out.

A real callback server on loopback receives the browser at each redirect URI; the RP's back end
(these classes) then talks to the token, userinfo and JWKS endpoints over real HTTP.
"""

import secrets
import threading
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from oic.oauth2.message import ErrorResponse
from oic.oic import Client as PyoidcClient
from oic.oic.message import AuthorizationResponse, OpenIDSchema, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from tests.interop.servers import WsgiServer


class CallbackServer:
    """The RP's own pages on loopback: its redirect URI, post-logout page and front-channel
    logout URI. It remembers every request it got."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self._lock = threading.Lock()
        self.server = WsgiServer(self._app)
        self.base = self.server.base

    def _app(self, environ, start_response):
        url = f"{self.base}{environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}"
        with self._lock:
            self.hits.append(url)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"relying party page"]

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def hits_to(self, path: str) -> list[str]:
        return [hit for hit in self.hits if urlsplit(hit).path == path]


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(str(url)).query).items()}


class AuthlibRP:
    """Authlib's OAuth2Session: PKCE S256, nonce, ID token checked with CodeIDToken against JWKS."""

    def __init__(self, name: str, issuer: str, client_id: str, secret: str | None, callback: CallbackServer) -> None:
        self.name = name
        self.issuer = issuer
        self.callback = callback
        self.redirect_uri = f"{callback.base}/{name}/callback"
        self.metadata = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
        auth_method = "client_secret_post" if secret else "none"
        self.session = OAuth2Session(
            client_id,
            secret,
            scope="openid profile email groups offline_access",
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=auth_method,
        )
        self.client_id = client_id
        self.token: dict = {}
        self.nonce = ""

    def authorization_url(self) -> str:
        self.nonce = secrets.token_urlsafe(16)
        self.verifier = secrets.token_urlsafe(48)
        url, self.state = self.session.create_authorization_url(
            self.metadata["authorization_endpoint"], code_verifier=self.verifier, nonce=self.nonce
        )
        return url

    def finish_sign_in(self, callback_url: str) -> dict:
        self.token = self.session.fetch_token(
            self.metadata["token_endpoint"], authorization_response=callback_url, code_verifier=self.verifier
        )
        return self.validated_id_token(self.token["id_token"], nonce=self.nonce)

    def validated_id_token(self, id_token: str, *, nonce: str | None = None) -> dict:
        keys = JsonWebKey.import_key_set(requests.get(self.metadata["jwks_uri"], timeout=10).json())
        options = {"iss": {"essential": True, "value": self.issuer}}
        params = {"client_id": self.client_id, "nonce": nonce} if nonce else {"client_id": self.client_id}
        claims = jwt.decode(id_token, keys, claims_cls=CodeIDToken, claims_options=options, claims_params=params)
        claims.validate(leeway=30)
        return dict(claims)

    def userinfo(self) -> dict:
        response = self.session.get(self.metadata["userinfo_endpoint"])
        assert response.status_code == 200, response.text
        return response.json()

    def refresh(self) -> dict:
        self.token = self.session.refresh_token(
            self.metadata["token_endpoint"], refresh_token=self.token["refresh_token"]
        )
        return self.validated_id_token(self.token["id_token"])

    def logout_url(self, post_logout_path: str) -> str:
        params = {
            "id_token_hint": self.token["id_token"],
            "post_logout_redirect_uri": f"{self.callback.base}{post_logout_path}",
            "state": "bye-" + self.name,
        }
        return f"{self.metadata['end_session_endpoint']}?{urlencode(params)}"


class PyoidcRP:
    """pyoidc's Client: discovery, keys from jwks_uri, client_secret_basic, PKCE S256; it verifies
    the ID token (signature, iss, aud, nonce) itself when parsing the token response."""

    def __init__(self, name: str, issuer: str, client_id: str, secret: str, callback: CallbackServer) -> None:
        self.name = name
        self.issuer = issuer
        self.callback = callback
        self.redirect_uri = f"{callback.base}/{name}/callback"
        self.client = PyoidcClient(client_authn_method=CLIENT_AUTHN_METHOD, verify_ssl=False)
        self.client.provider_config(issuer)
        self.client.store_registration_info(
            RegistrationResponse(
                client_id=client_id,
                client_secret=secret,
                redirect_uris=[self.redirect_uri],
                token_endpoint_auth_method="client_secret_basic",
            )
        )
        self.client_id = client_id
        self.state = ""
        self.id_token_jwt = ""

    def authorization_url(self) -> str:
        self.state, self.nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        pkce, self.verifier = self.client.add_code_challenge()
        request_args = {
            "response_type": "code",
            "scope": "openid profile email groups offline_access",
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "nonce": self.nonce,
            **pkce,
        }
        request = self.client.construct_AuthorizationRequest(request_args=request_args)
        return request.request(self.client.authorization_endpoint)

    def finish_sign_in(self, callback_url: str) -> dict:
        answer = self.client.parse_response(
            AuthorizationResponse, info=urlsplit(callback_url).query, sformat="urlencoded"
        )
        assert answer["state"] == self.state
        response = self.client.do_access_token_request(
            state=self.state,
            request_args={"code": answer["code"], "code_verifier": self.verifier, "redirect_uri": self.redirect_uri},
            authn_method="client_secret_basic",
        )
        assert not isinstance(response, ErrorResponse), response.to_dict()
        self.id_token_jwt = response["id_token"].jwt
        return response["id_token"].to_dict()

    def refresh_jwks(self) -> None:
        """What pyoidc does when its key cache expires: fetch the JWKS again."""
        for bundle in self.client.keyjar.issuer_keys[self.issuer]:
            if bundle.remote:
                bundle.update()

    def userinfo(self) -> dict:
        info = self.client.do_user_info_request(state=self.state)
        assert isinstance(info, OpenIDSchema), info
        return info.to_dict()

    def refresh(self) -> dict:
        response = self.client.do_access_token_refresh(state=self.state, authn_method="client_secret_basic")
        assert not isinstance(response, ErrorResponse), response.to_dict()
        self.id_token_jwt = response["id_token"].jwt
        return response["id_token"].to_dict()

    def logout_url(self, post_logout_path: str) -> str:
        request = self.client.construct_EndSessionRequest(
            state=self.state,
            request_args={
                "id_token_hint": self.id_token_jwt,
                "post_logout_redirect_uri": f"{self.callback.base}{post_logout_path}",
                "state": "bye-" + self.name,
            },
        )
        return request.request(self.client.end_session_endpoint)


def portal_is_signed_in(client: httpx.Client, base: str) -> bool:
    """Whether this browser still holds a portal session (the launchpad answers, not the sign-in)."""
    page = client.get(f"{base}/", follow_redirects=False)
    return page.status_code == 200
