"""django-oauth-toolkit's validator, subclassed: each connector's client and policy from its
settings (apps.connectors.models.OidcSettings), ID tokens signed with the portal's keys, claims
from the connector's mappings, and the sign-in session behind every code and token family.

oauthlib calls these methods; the request it passes carries what apps.oidc.server put on it:
the connector the endpoint belongs to (the issuer in the URL) and, at the authorization
endpoint, the portal session's sign-in facts.
"""

import base64
import binascii
import datetime
import json
import uuid
from typing import Any
from urllib.parse import unquote_plus

from django.utils import timezone
from jwcrypto import jwt
from oauth2_provider.models import get_grant_model, get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator

from apps.connectors.oidc_settings import client_secret_matches
from apps.oidc import claims as claim_rules
from apps.oidc import keys, selectors, services
from apps.oidc.introspection import token_claims
from apps.oidc.session import SignIn

Grant = get_grant_model()
RefreshToken = get_refresh_token_model()

# The header apps.oidc.server.PortalOAuthLibCore sets from the URL: which connector's endpoint
# this is. A client cannot send it (client headers reach Django as HTTP_*).
CONNECTOR_HEADER = "IDP_PORTAL_OIDC_CONNECTOR"
SUPPORTED_GRANT_TYPES = ("authorization_code", "refresh_token")


def access_token_lifetime(request: Any) -> int:
    """oauthlib's `expires_in` for a token response: the connector's access-token lifetime."""
    return request.client.oidc.access_token_lifetime_seconds


class PortalOAuth2Validator(OAuth2Validator):
    # Claims are scoped by apps.oidc.claims, from the connector's mappings.
    oidc_claim_scope = None

    # --- Clients ------------------------------------------------------------------------------

    def _load_application(self, client_id: str, request: Any) -> Any:
        """The toolkit's Application for `client_id`, with `.oidc` (the connector's settings) and
        `.connector`, when the client belongs to this endpoint's connector and it is switched on."""
        client = getattr(request, "client", None)
        if client is not None and getattr(client, "client_id", None) == client_id and hasattr(client, "oidc"):
            return client
        request.client = None
        oidc = selectors.oidc_settings_by_client_id(client_id or "")
        if oidc is None or not oidc.connector.enabled:
            return None
        if oidc.connector.slug != request.headers.get(CONNECTOR_HEADER):
            return None  # another issuer's client
        application = services.application_for(oidc)
        application.oidc, application.connector = oidc, oidc.connector
        request.client = application
        return application

    @staticmethod
    def _basic_credentials(request: Any) -> tuple[str, str] | None:
        auth = request.headers.get("HTTP_AUTHORIZATION") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, separator, secret = decoded.partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) if separator else None

    def client_authentication_required(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        if self._basic_credentials(request) or getattr(request, "client_secret", None):
            return True
        client = self._load_application(request.client_id, request)
        return client is None or not client.oidc.is_public

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        """client_secret_basic or client_secret_post; the previous secret within its overlap."""
        credentials = self._basic_credentials(request)
        if credentials is None:
            client_id, secret = request.client_id, getattr(request, "client_secret", None) or ""
        else:
            client_id, secret = credentials
            if request.client_id and request.client_id != client_id:
                return False
            request.client_id = client_id
        client = self._load_application(client_id, request)
        if client is None or client.oidc.is_public:
            return False
        return client_secret_matches(client.oidc, secret)

    def authenticate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        client = self._load_application(client_id, request)
        return client is not None and client.oidc.is_public

    def validate_client_id(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        return self._load_application(client_id, request) is not None

    # --- Authorization requests ---------------------------------------------------------------

    def validate_redirect_uri(self, client_id: str, redirect_uri: str, request: Any, *args: Any, **kwargs: Any) -> bool:
        """Exact string match against the registered URIs (no prefix, no extra query, RFC 9700 2.1)."""
        return redirect_uri in request.client.oidc.redirect_uris

    def get_default_redirect_uri(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> None:
        # OpenID Connect requires redirect_uri in every authorization request.
        return None

    def validate_response_type(
        self, client_id: str, response_type: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        return response_type == "code"

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        if grant_type == "refresh_token":
            return client.oidc.refresh_token_lifetime_seconds > 0
        return grant_type in SUPPORTED_GRANT_TYPES

    def validate_scopes(
        self, client_id: str, scopes: list, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        return set(scopes) <= set(client.oidc.allowed_scopes)

    def get_default_scopes(self, client_id: str, request: Any, *args: Any, **kwargs: Any) -> list[str]:
        return ["openid"]

    def is_pkce_required(self, client_id: str, request: Any) -> bool:
        """Public clients prove themselves with PKCE; confidential ones may use it too."""
        client = self._load_application(client_id, request)
        return client is None or client.oidc.is_public

    def validate_silent_login(self, request: Any) -> bool:
        # prompt=none is decided by apps.oidc.authorize, which sees the portal session.
        return True

    def validate_silent_authorization(self, request: Any) -> bool:
        # Connectors are set up by admins: there is no consent to ask for.
        return True

    def validate_user_match(self, id_token_hint: Any, scopes: Any, claims: Any, request: Any) -> bool:
        # id_token_hint is checked against the session by apps.oidc.authorize.
        return True

    def save_authorization_code(self, client_id: str, code: dict, request: Any, *args: Any, **kwargs: Any) -> None:
        super().save_authorization_code(client_id, code, request, *args, **kwargs)
        sign_in: SignIn = request.sign_in
        services.session_start(
            connector=request.client.connector, user=request.user, sign_in=sign_in, code=code["code"]
        )

    # --- Token requests -----------------------------------------------------------------------

    def validate_code(self, client_id: str, code: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        grant = Grant.objects.filter(code=code, application=client).select_related("user").first()
        if grant is None:
            if services.code_reused(connector=client.connector, code=code):
                request.refusal = "code_reused"
            return False
        if grant.is_expired():
            request.refusal = "code_expired"
            return False
        if getattr(request, "code_verifier", None) and not grant.code_challenge:
            # PKCE downgrade (RFC 9700 2.1.1): a verifier for a code issued without a challenge.
            request.refusal = "pkce_downgrade"
            return False
        session = selectors.session_by_code(services.code_checksum(code))
        if session is None or session.ended is not None:
            request.refusal = "session_ended"
            return False
        refusal = selectors.may_sign_in(client.connector, grant.user)
        if refusal:
            request.refusal = refusal
            return False
        request.oidc_session = session
        # What the toolkit's own validate_code sets, from the grant read once for this request.
        request.grant = grant
        request.scopes = grant.scope.split(" ")
        request.user = grant.user
        if grant.nonce:
            request.nonce = grant.nonce
        if grant.claims:
            request.claims = json.loads(grant.claims)
        return True

    # The grant read by validate_code answers the toolkit's later questions about the same code.

    def _grant_of(self, code: str, request: Any) -> Any:
        grant = getattr(request, "grant", None)
        if grant is not None and grant.code == code:
            return grant
        return Grant.objects.filter(code=code, application=request.client).first()

    def get_code_challenge(self, code: str, request: Any) -> str | None:
        grant = self._grant_of(code, request)
        return (grant.code_challenge or None) if grant else None

    def get_code_challenge_method(self, code: str, request: Any) -> str | None:
        grant = self._grant_of(code, request)
        return (grant.code_challenge_method or None) if grant else None

    def confirm_redirect_uri(
        self, client_id: str, code: str, redirect_uri: str, client: Any, *args: Any, **kwargs: Any
    ) -> bool:
        request = kwargs.get("request") or (args[0] if args else None)
        grant = self._grant_of(code, request) if request is not None else None
        if grant is None:
            return super().confirm_redirect_uri(client_id, code, redirect_uri, client, *args, **kwargs)
        return grant.redirect_uri_allowed(redirect_uri)

    def get_authorization_code_nonce(self, client_id: str, code: str, redirect_uri: str, request: Any) -> str | None:
        grant = self._grant_of(code, request)
        return (grant.nonce or None) if grant else None

    def _create_access_token(self, expires: Any, request: Any, token: dict, source_refresh_token: Any = None) -> Any:
        """The ID token row was made in this request (finalize_id_token): link it rather than
        have the toolkit parse and verify the token it just signed."""
        id_token = token.pop("id_token", None)
        try:
            access_token = super()._create_access_token(expires, request, token, source_refresh_token)
        finally:
            if id_token is not None:
                token["id_token"] = id_token
        if id_token is not None and getattr(request, "id_token", None) is not None:
            access_token.id_token = request.id_token
            access_token.save(update_fields=["id_token"])
        return access_token

    def validate_refresh_token(self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
        previous = RefreshToken.objects.filter(token_checksum=services.code_checksum(refresh_token)).first()
        if previous is not None and previous.revoked is not None and previous.application_id == client.pk:
            services.refresh_token_reused(
                connector=client.connector, token_family=previous.token_family, user=previous.user
            )
            request.refusal = "refresh_token_reused"
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        rt = request.refresh_token_instance
        session = selectors.session_by_family(rt.token_family)
        refusal = "session_ended" if session is None or session.ended is not None else ""
        if not refusal:
            refusal = selectors.may_sign_in(client.connector, rt.user)
        if not refusal:
            lifetime = datetime.timedelta(seconds=client.oidc.refresh_token_lifetime_seconds)
            if timezone.now() >= (session.code_used or session.created) + lifetime:
                refusal = "refresh_token_expired"
        if refusal:
            if session is not None:
                services.session_end(session, reason=refusal)
            request.refusal = refusal
            return False
        request.oidc_session = session
        return True

    def refresh_id_token(self, request: Any) -> bool:
        return True

    def save_bearer_token(self, token: dict, request: Any, *args: Any, **kwargs: Any) -> None:
        if request.client.oidc.refresh_token_lifetime_seconds == 0:
            token.pop("refresh_token", None)
        request.issued_refresh_token = None
        super().save_bearer_token(token, request, *args, **kwargs)
        issued = request.issued_refresh_token
        if request.grant_type == "authorization_code":
            services.session_link_tokens(
                request.oidc_session, token_family=issued.token_family if issued else uuid.uuid4()
            )

    def _create_refresh_token(self, request: Any, refresh_token_code: str, access_token: Any, previous: Any) -> Any:
        refresh_token = super()._create_refresh_token(request, refresh_token_code, access_token, previous)
        request.issued_refresh_token = refresh_token
        return refresh_token

    # --- ID tokens and claims -----------------------------------------------------------------

    def get_oidc_issuer_endpoint(self, request: Any) -> str:
        return request.client.connector.idp_entity_id

    def _user_claims(self, request: Any, scopes: list[str]) -> dict:
        connector, oidc = request.client.connector, request.client.oidc
        mappings = selectors.claim_mappings(connector)
        properties = selectors.claim_properties_of(request.user, mappings)
        return claim_rules.user_claims(properties, mappings, scopes, oidc.sub_source)

    def get_id_token_dictionary(self, token: dict, token_handler: Any, request: Any) -> tuple[dict, datetime.datetime]:
        session = request.oidc_session
        oidc = request.client.oidc
        now = timezone.now()
        expires = now + datetime.timedelta(seconds=oidc.id_token_lifetime_seconds)
        claims = self._user_claims(request, request.scopes)
        claims.update(
            {
                "iss": self.get_oidc_issuer_endpoint(request),
                "exp": int(expires.timestamp()),
                "auth_time": int(session.auth_time.timestamp()),
                "sid": session.sid,
                "azp": request.client.client_id,
                "jti": str(uuid.uuid4()),
            }
        )
        if session.amr:
            claims["amr"] = session.amr
        if session.acr:
            claims["acr"] = session.acr
        return claims, expires

    def finalize_id_token(self, id_token: dict, token: dict, token_handler: Any, request: Any) -> str:
        """Sign with the portal's current key (the same keys and rotation as SAML)."""
        claims, expires = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        key = keys.signing_jwk(request.client.connector)
        signed = jwt.JWT(header={"typ": "JWT", "alg": keys.ALGORITHM, "kid": key.get("kid")}, claims=id_token)
        signed.make_signed_token(key)
        request.id_token = self._save_id_token(id_token["jti"], request, expires)
        return signed.serialize()

    def _get_key_for_token(self, token: str) -> Any:
        """The keys of the connector an ID token names as its audience (the toolkit reloads the
        ID token it just issued this way)."""
        claims = unverified_claims(token)
        audience = claims.get("aud")
        client_id = audience if isinstance(audience, str) else (audience or [None])[0]
        oidc = selectors.oidc_settings_by_client_id(client_id or "")
        return keys.verification_keys(oidc.connector) if oidc is not None else None

    def get_userinfo_claims(self, request: Any) -> dict:
        return self._user_claims(request, request.scopes)

    def validate_bearer_token(self, token: str, scopes: list, request: Any) -> bool:
        """A live access token of this endpoint's connector, for a user who may still sign in."""
        if not super().validate_bearer_token(token, scopes, request):
            return False
        application = request.client
        oidc = selectors.oidc_settings_by_client_id(getattr(application, "client_id", ""))
        connector = oidc.connector if oidc is not None else None
        if connector is None or connector.slug != request.headers.get(CONNECTOR_HEADER):
            request.oauth2_error = {"error": "invalid_token", "error_description": "The access token is invalid."}
            return False
        if selectors.may_sign_in(connector, request.user):
            request.oauth2_error = {"error": "invalid_token", "error_description": "The access token is invalid."}
            return False
        application.oidc, application.connector = oidc, connector
        return True

    # --- Introspection ------------------------------------------------------------------------

    def introspect_token(self, token: str, token_type_hint: str | None, request: Any, *args: Any, **kwargs: Any):
        """RFC 7662 for the calling client's own tokens; None (inactive) for anything else."""
        return token_claims(token, token_type_hint, client=request.client)


def pkce_method_allowed(method: str | None) -> bool:
    """Only S256: `plain` sends the verifier in the clear and gives no protection (RFC 9700 2.1.1)."""
    return method == "S256"


def _unverified_part(token: str, index: int) -> dict:
    try:
        value = json.loads(base64.urlsafe_b64decode(token.split(".")[index] + "==").decode())
    except (ValueError, UnicodeDecodeError, IndexError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


def unverified_header(token: str) -> dict:
    """The JOSE header of a compact JWT, unverified (to word a refusal), or {}."""
    return _unverified_part(token, 0)


def unverified_claims(token: str) -> dict:
    """The claims of a compact JWT, unverified (to find the keys to verify it with), or {}."""
    return _unverified_part(token, 1)
