"""Fixtures for the OpenID Connect provider: an OIDC connector from the catalog, a person assigned
to it through a group, a browser (Django's test client) that signs in on the portal's real sign-in
page, and a small relying party that speaks the protocol by the book."""

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from jwcrypto import jwk, jwt

from apps.connectors import services as connector_services
from apps.directory import services as directory_services
from tests.factories import GroupFactory, UserFactory
from tests.saml_idp.conftest import _fast_keys  # noqa: F401 - the pooled RSA keys, autouse

PASSWORD = "s3cret-Pass-99"
REDIRECT_URI = "https://rp.example.com/callback"
LOGOUT_URI = "https://rp.example.com/signed-out"
FRONTCHANNEL_URI = "https://rp.example.com/frontchannel"


@pytest.fixture
def user(db):
    return UserFactory(
        username="jane.doe", email="jane.doe@example.com", first_name="Jane", last_name="Doe", password=PASSWORD
    )


def make_oidc_connector(*, oidc: dict | None = None, template: str = "generic-oidc", slug: str = "rp", enabled=True):
    settings = {
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": [LOGOUT_URI],
        "frontchannel_logout_uri": FRONTCHANNEL_URI,
        **(oidc or {}),
    }
    return connector_services.connector_create(
        actor=None, template=template, name="Relying Party", slug=slug, enabled=enabled, oidc=settings
    )


@pytest.fixture
def group(db, user):
    group = GroupFactory(name="Engineering")
    directory_services.group_add_members(actor=None, group=group, users=[user])
    return group


@pytest.fixture
def connector(db, group):
    connector = make_oidc_connector()
    connector_services.assignment_create(actor=None, connector=connector, group=group)
    return connector


def sign_in(client, username: str = "jane.doe", password: str = PASSWORD, next_url: str = ""):
    data = {"username": username, "password": password}
    if next_url:
        data["next"] = next_url
    response = client.post("/login/", data)
    assert response.status_code == 302, response.content[:400]
    return response


class RelyingParty:
    """An app signing people in by the book: state, nonce and PKCE S256 on every request."""

    def __init__(self, client, connector, *, secret: str | None = None, redirect_uri: str = REDIRECT_URI):
        self.client = client
        self.connector = connector
        self.secret = secret if secret is not None else getattr(connector, "issued_client_secret", None)
        self.redirect_uri = redirect_uri
        self.base = f"/oidc/{connector.slug}"
        self.state = self.nonce = self.verifier = ""

    @property
    def client_id(self) -> str:
        return self.connector.oidc.client_id

    def authorize_url(self, **extra) -> str:
        self.state, self.nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": "openid profile email groups offline_access",
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{self.base}/authorize?{urlencode({k: v for k, v in params.items() if v is not None})}"

    def authorize(self, **extra):
        return self.client.get(self.authorize_url(**extra))

    @staticmethod
    def answer(response) -> dict[str, str]:
        """The parameters the portal sent back to the redirect URI."""
        assert response.status_code == 302, (response.status_code, response.content[:500])
        location = response["Location"]
        assert location.startswith("http"), location
        return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}

    def code(self, **extra) -> str:
        answer = self.answer(self.authorize(**extra))
        assert "code" in answer, answer
        assert answer["state"] == self.state
        return answer["code"]

    def _auth(self) -> dict:
        if not self.secret:
            return {}
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode()}

    def token(self, code: str, *, verifier: str | None = None, **extra):
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier if verifier is None else verifier,
            **extra,
        }
        if not self.secret:
            data["client_id"] = self.client_id
        return self.client.post(f"{self.base}/token", {k: v for k, v in data.items() if v}, **self._auth())

    def refresh(self, refresh_token: str):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if not self.secret:
            data["client_id"] = self.client_id
        return self.client.post(f"{self.base}/token", data, **self._auth())

    def tokens(self, **extra) -> dict:
        response = self.token(self.code(**extra))
        assert response.status_code == 200, response.content
        return json.loads(response.content)

    def jwks(self) -> jwk.JWKSet:
        return jwk.JWKSet.from_json(self.client.get(f"{self.base}/jwks").content)

    def id_token_claims(self, id_token: str) -> dict:
        parsed = jwt.JWT(jwt=id_token, key=self.jwks(), algs=["RS256"])
        return json.loads(parsed.claims)

    def userinfo(self, access_token: str):
        return self.client.get(f"{self.base}/userinfo", HTTP_AUTHORIZATION=f"Bearer {access_token}")
