"""A strict SAML SP built on python3-saml (OneLogin), a peer nobody here wrote.

It trusts our IdP only through our published metadata (certificate, entity ID, SSO URL), builds
its own AuthnRequests, and validates our Responses with OneLogin's own checks (signature,
audience, destination, InResponseTo, conditions, recipient). Outside a web framework,
python3-saml is driven with a request-data dict describing the request that reached its ACS.
"""

import base64
import datetime
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.saml_idp.keys import generate_key_pair

SP_ENTITY_ID = "https://sp.example.com/saml/metadata"
SP_ACS_URL = "https://sp.example.com/saml/acs"


@dataclass(frozen=True)
class SpKeys:
    signing_key: str
    signing_cert: str
    encryption_key: str
    encryption_cert: str


_keys: SpKeys | None = None


def sp_keys() -> SpKeys:
    """The SP's own key pairs (generated once per test process: RSA generation is slow)."""
    global _keys
    if _keys is None:
        signing = generate_key_pair(key_size=2048, validity_days=30, common_name="test SP signing")
        encryption = generate_key_pair(key_size=2048, validity_days=30, common_name="test SP encryption")
        _keys = SpKeys(
            signing.private_key_pem, signing.certificate_pem, encryption.private_key_pem, encryption.certificate_pem
        )
    return _keys


@dataclass
class AcsResult:
    auth: OneLogin_Saml2_Auth
    errors: list[str]
    reason: str | None
    attributes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and self.auth.is_authenticated()


class OneLoginSP:
    def __init__(
        self,
        idp_metadata: bytes | str,
        *,
        entity_id: str = SP_ENTITY_ID,
        acs_url: str = SP_ACS_URL,
        sign_requests: bool = False,
        want_messages_signed: bool = False,
        want_assertions_signed: bool = True,
        want_assertions_encrypted: bool = False,
        name_id_format: str = OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS,
        private_key: str | None = None,
        certificate: str | None = None,
    ) -> None:
        idp = OneLogin_Saml2_IdPMetadataParser.parse(
            idp_metadata.decode() if isinstance(idp_metadata, bytes) else idp_metadata
        )["idp"]
        keys = sp_keys()
        # One key pair serves both signing and decryption in python3-saml's settings.
        key = private_key or (keys.encryption_key if want_assertions_encrypted else keys.signing_key)
        cert = certificate or (keys.encryption_cert if want_assertions_encrypted else keys.signing_cert)
        self.acs_url = acs_url
        self.settings_dict = {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": entity_id,
                "assertionConsumerService": {"url": acs_url, "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST},
                "singleLogoutService": {
                    "url": acs_url.replace("/acs", "/sls"),
                    "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
                },
                "NameIDFormat": name_id_format,
                "x509cert": cert,
                "privateKey": key,
            },
            "idp": idp,
            "security": {
                "authnRequestsSigned": sign_requests,
                "logoutRequestSigned": sign_requests,
                "wantMessagesSigned": want_messages_signed,
                "wantAssertionsSigned": want_assertions_signed,
                "wantAssertionsEncrypted": want_assertions_encrypted,
                "wantNameId": True,
                "requestedAuthnContext": False,
                "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
                "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
                "rejectDeprecatedAlgorithm": True,
                "rejectUnsolicitedResponsesWithInResponseTo": True,
            },
        }
        self.idp = idp

    def _request_data(self, url: str, post: dict | None = None, get: dict | None = None) -> dict:
        parts = urlsplit(url)
        return {
            "https": "on" if parts.scheme == "https" else "off",
            "http_host": parts.netloc,
            "script_name": parts.path,
            "get_data": get or {},
            "post_data": post or {},
        }

    def auth(self, post: dict | None = None, get: dict | None = None) -> OneLogin_Saml2_Auth:
        return OneLogin_Saml2_Auth(self._request_data(self.acs_url, post, get), old_settings=self.settings_dict)

    # --- AuthnRequests ---

    def redirect_login(self, *, relay_state: str = "", force_authn: bool = False, is_passive: bool = False):
        """(url, request id): python3-saml's own HTTP-Redirect AuthnRequest to our SSO URL."""
        auth = self.auth()
        url = auth.login(return_to=relay_state or None, force_authn=force_authn, is_passive=is_passive)
        return url, auth.get_last_request_id()

    def authn_request_xml(self, **kwargs) -> tuple[str, str]:
        settings = OneLogin_Saml2_Settings(self.settings_dict)
        request = OneLogin_Saml2_Authn_Request(settings, **kwargs)
        return request.get_xml(), request.get_id()

    def post_login(self, *, relay_state: str = "", sign: bool = False, xml: str | None = None, **kwargs):
        """(sso url, form, request id): an HTTP-POST AuthnRequest, signed in the XML when `sign`."""
        request_id = None
        if xml is None:
            xml, request_id = self.authn_request_xml(**kwargs)
        if sign:
            keys = sp_keys()
            xml = OneLogin_Saml2_Utils.add_sign(
                xml,
                keys.signing_key,
                keys.signing_cert,
                sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA256,
                digest_algorithm=OneLogin_Saml2_Constants.SHA256,
            )
        data = xml if isinstance(xml, bytes) else xml.encode()
        form = {"SAMLRequest": base64.b64encode(data).decode()}
        if relay_state:
            form["RelayState"] = relay_state
        return self.idp["singleSignOnService"]["url"], form, request_id

    # --- The ACS ---

    def acs(self, saml_response: str, *, request_id: str | None, relay_state: str = "") -> AcsResult:
        post = {"SAMLResponse": saml_response}
        if relay_state:
            post["RelayState"] = relay_state
        auth = self.auth(post=post)
        auth.process_response(request_id=request_id)
        return AcsResult(
            auth=auth, errors=auth.get_errors(), reason=auth.get_last_error_reason(), attributes=auth.get_attributes()
        )


def sls_result(sp: "OneLoginSP", url: str, *, request_id: str | None) -> tuple[list[str], str | None]:
    """python3-saml's SingleLogoutService processing the LogoutResponse our IdP redirected to."""
    parts = urlsplit(url)
    get = {name: values[0] for name, values in parse_qs(parts.query).items()}
    auth = OneLogin_Saml2_Auth(sp._request_data(url.split("?")[0], get=get), old_settings=sp.settings_dict)
    auth.process_slo(request_id=request_id, keep_local_session=True)
    return auth.get_errors(), auth.get_last_error_reason()


def deflate_and_encode(xml: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode()


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def saml_instant(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
