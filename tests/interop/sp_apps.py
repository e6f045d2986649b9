"""Two python SAML SPs as small WSGI apps on loopback: python3-saml (OneLogin, driven through
tests/saml_idp/sp.py's OneLoginSP) and pysaml2's own SP (`saml2.client.Saml2Client`).

Each app: `/` is the protected page (JSON of what the SP read from the assertion, or a redirect
to `/login`), `/login` starts SP-initiated sign-in, `/acs` takes the Response (solicited or not),
`/logout` starts SP-initiated single logout, `/sls` takes the IdP's LogoutResponse, `/metadata`
is the SP's own metadata. Each Response that reached the ACS is kept with the algorithms it used.
"""

import base64
import json
import secrets
import shutil
import tempfile
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs

from lxml import etree
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, name_id_from_string
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from apps.connectors.saml_algorithms import DATA_ALGORITHMS, KEY_TRANSPORTS, SHA256_DIGEST
from apps.saml_idp.keys import generate_key_pair
from tests.interop.servers import WsgiServer
from tests.saml_idp.sp import OneLoginSP, sls_result, sp_keys

_XENC = "http://www.w3.org/2001/04/xmlenc#"
_DS = "http://www.w3.org/2000/09/xmldsig#"
_MD = "urn:oasis:names:tc:SAML:2.0:metadata"


def response_algorithms(saml_response: str) -> dict:
    """What a Response (HTTP-POST value) shows on the wire: encryption and signature algorithms."""
    root = etree.fromstring(base64.b64decode(saml_response))
    data = root.find(f".//{{{_XENC}}}EncryptedData/{{{_XENC}}}EncryptionMethod")
    key = root.find(f".//{{{_XENC}}}EncryptedKey/{{{_XENC}}}EncryptionMethod")
    signature = root.find(f"{{{_DS}}}Signature/{{{_DS}}}SignedInfo/{{{_DS}}}SignatureMethod")
    digest = root.find(f"{{{_DS}}}Signature/{{{_DS}}}SignedInfo/{{{_DS}}}Reference/{{{_DS}}}DigestMethod")
    return {
        "encrypted": data is not None,
        "data": data.get("Algorithm") if data is not None else "",
        "key": key.get("Algorithm") if key is not None else "",
        "signature": signature.get("Algorithm") if signature is not None else "",
        "digest": digest.get("Algorithm") if digest is not None else "",
    }


class PythonSP:
    """The WSGI plumbing both python SPs share: cookie sessions, routes, recorded responses."""

    name = ""
    cookie = "python_sp"

    def __init__(self) -> None:
        self.web = WsgiServer(self.app)
        self.base = self.web.base
        self.entity_id = f"{self.base}/metadata"
        self.protected_url = f"{self.base}/"
        self.sessions: dict[str, dict] = {}
        self.pending: dict[str, str] = {}  # browser cookie -> outstanding request id
        self.received: list[dict] = []

    # --- per SP ---

    def configure(self, idp_metadata: bytes) -> None:
        raise NotImplementedError

    def metadata(self) -> bytes:
        raise NotImplementedError

    # --- WSGI ---

    def _browser_id(self, environ) -> tuple[str, bool]:
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        if self.cookie in cookie:
            return cookie[self.cookie].value, False
        return secrets.token_hex(16), True

    def app(self, environ, start_response):
        browser, new = self._browser_id(environ)
        headers = [("Set-Cookie", f"{self.cookie}={browser}; Path=/; HttpOnly")] if new else []
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        form = {}
        if method == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
            form = {k: v[0] for k, v in parse_qs(body).items()}
        try:
            status, extra, body = self.route(path, browser, query, form, environ)
        except Exception as exc:  # noqa: BLE001 - the SP's error page, shown to the test
            status, extra, body = "500 Internal Server Error", [], f"{type(exc).__name__}: {exc}".encode()
        start_response(status, headers + extra)
        return [body]

    def route(self, path: str, browser: str, query: dict, form: dict, environ) -> tuple[str, list, bytes]:
        if path == "/metadata":
            return "200 OK", [("Content-Type", "application/samlmetadata+xml")], self.metadata()
        if path == "/":
            session = self.sessions.get(browser)
            if session is None:
                return "302 Found", [("Location", f"{self.base}/login")], b""
            return "200 OK", [("Content-Type", "application/json")], json.dumps(session).encode()
        if path == "/login":
            location, request_id = self.login_redirect(relay_state=self.protected_url)
            self.pending[browser] = request_id
            return "302 Found", [("Location", location)], b""
        if path == "/acs" and "SAMLResponse" in form:
            self.received.append(response_algorithms(form["SAMLResponse"]))
            session, error = self.read_response(form["SAMLResponse"], self.pending.pop(browser, None))
            if error:
                return "403 Forbidden", [("Content-Type", "text/plain")], error.encode()
            self.sessions[browser] = session
            return "302 Found", [("Location", form.get("RelayState") or self.protected_url)], b""
        if path == "/logout":
            session = self.sessions.get(browser)
            if session is None:
                return "200 OK", [("Content-Type", "text/plain")], b"not signed in"
            location, request_id = self.logout_redirect(session)
            if not location:  # done over the back-channel (SOAP): nothing for the browser to carry
                self.sessions.pop(browser, None)
                return "200 OK", [("Content-Type", "text/plain")], b"signed out"
            self.pending[browser] = request_id
            return "302 Found", [("Location", location)], b""
        if path == "/sls":
            url = f"{self.base}/sls?{environ.get('QUERY_STRING', '')}"
            error = self.read_logout_response(url, query, form, self.pending.pop(browser, None))
            if error:
                return "400 Bad Request", [("Content-Type", "text/plain")], error.encode()
            self.sessions.pop(browser, None)
            return "200 OK", [("Content-Type", "text/plain")], b"signed out"
        return "404 Not Found", [("Content-Type", "text/plain")], b"not found"

    def login_redirect(self, *, relay_state: str) -> tuple[str, str]:
        raise NotImplementedError

    def read_response(self, saml_response: str, request_id: str | None) -> tuple[dict, str]:
        raise NotImplementedError

    def logout_redirect(self, session: dict) -> tuple[str, str]:
        raise NotImplementedError

    def read_logout_response(self, url: str, query: dict, form: dict, request_id: str | None) -> str:
        raise NotImplementedError

    def start(self) -> None:
        self.web.start()

    def stop(self) -> None:
        self.web.stop()


class OneLoginApp(PythonSP):
    """python3-saml (OneLogin): strict mode, wants signed assertions, decrypts with its key.

    Its metadata lists the algorithms its xmlsec (the python binding, libxmlsec1 1.3) decrypts:
    AES-GCM and CBC, RSA-OAEP with SHA-256 or MGF1-SHA1. python3-saml's metadata builder writes no
    md:EncryptionMethod, so the SP's operator adds them, as its documentation suggests for IdPs
    that negotiate.
    """

    name = "python3-saml"
    cookie = "onelogin_sp"

    def configure(self, idp_metadata: bytes) -> None:
        self.sp = OneLoginSP(
            idp_metadata,
            entity_id=self.entity_id,
            acs_url=f"{self.base}/acs",
            want_assertions_signed=True,
            want_assertions_encrypted=True,
        )
        self._metadata = self._metadata_with_encryption_methods()
        # Accept a plaintext assertion too (the matrix switches encryption off at the IdP); an
        # encrypted one is still decrypted with the key from the metadata above.
        self.sp.settings_dict["security"]["wantAssertionsEncrypted"] = False

    def _metadata_with_encryption_methods(self) -> bytes:
        xml = OneLogin_Saml2_Settings(self.sp.settings_dict, sp_validation_only=True).get_sp_metadata()
        root = etree.fromstring(xml)
        for descriptor in root.iter(f"{{{_MD}}}KeyDescriptor"):
            if descriptor.get("use") != "encryption":
                continue
            for algorithm in (DATA_ALGORITHMS["aes256-gcm"], DATA_ALGORITHMS["aes256-cbc"]):
                etree.SubElement(descriptor, f"{{{_MD}}}EncryptionMethod", Algorithm=algorithm)
            oaep = etree.SubElement(
                descriptor, f"{{{_MD}}}EncryptionMethod", Algorithm=KEY_TRANSPORTS["rsa-oaep-sha256"]
            )
            etree.SubElement(oaep, f"{{{_DS}}}DigestMethod", Algorithm=SHA256_DIGEST)
            etree.SubElement(descriptor, f"{{{_MD}}}EncryptionMethod", Algorithm=KEY_TRANSPORTS["rsa-oaep-mgf1p"])
        return etree.tostring(root)

    def metadata(self) -> bytes:
        return self._metadata

    def login_redirect(self, *, relay_state: str) -> tuple[str, str]:
        return self.sp.redirect_login(relay_state=relay_state)

    def read_response(self, saml_response: str, request_id: str | None) -> tuple[dict, str]:
        result = self.sp.acs(saml_response, request_id=request_id)
        if not result.ok:
            return {}, f"{result.errors}: {result.reason}"
        auth = result.auth
        return {
            "name_id": auth.get_nameid(),
            "name_id_format": auth.get_nameid_format(),
            "session_index": auth.get_session_index(),
            "attributes": result.attributes,
        }, ""

    def logout_redirect(self, session: dict) -> tuple[str, str]:
        auth = self.sp.auth()
        url = auth.logout(
            return_to=f"{self.base}/",
            name_id=session["name_id"],
            session_index=session["session_index"],
            name_id_format=session["name_id_format"],
        )
        return url, auth.get_last_request_id()

    def read_logout_response(self, url: str, query: dict, form: dict, request_id: str | None) -> str:
        errors, reason = sls_result(self.sp, url, request_id=request_id)
        return f"{errors}: {reason}" if errors else ""


class Pysaml2App(PythonSP):
    """pysaml2's SP (`Saml2Client`): RSA-SHA256 requests, signed assertions wanted, decrypts with
    the `xmlsec1` program. Its metadata lists the signature and digest algorithms that program
    supports (alg:SigningMethod / alg:DigestMethod), and no encryption methods."""

    name = "pysaml2"
    cookie = "pysaml2_sp"

    def __init__(self) -> None:
        super().__init__()
        self._files = Path(tempfile.mkdtemp(prefix="interop-pysaml2-"))
        keys = generate_key_pair(key_size=2048, validity_days=30, common_name="pysaml2 SP")
        (self._files / "sp.key").write_text(keys.private_key_pem)
        (self._files / "sp.crt").write_text(keys.certificate_pem)
        self.idp_metadata = ""
        self.soap_logouts = 0

    def _config(self) -> SPConfig:
        key, cert = str(self._files / "sp.key"), str(self._files / "sp.crt")
        config = SPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "service": {
                    "sp": {
                        "endpoints": {
                            "assertion_consumer_service": [(f"{self.base}/acs", BINDING_HTTP_POST)],
                            "single_logout_service": [(f"{self.base}/sls", BINDING_HTTP_REDIRECT)],
                        },
                        "allow_unsolicited": True,
                        "want_assertions_signed": True,
                        "want_response_signed": False,
                        "authn_requests_signed": False,
                        "logout_requests_signed": True,
                        # pysaml2 signs with RSA-SHA1 unless told otherwise (the portal refuses SHA-1).
                        "signing_algorithm": SIG_RSA_SHA256,
                        "digest_algorithm": DIGEST_SHA256,
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    }
                },
                "key_file": key,
                "cert_file": cert,
                "encryption_keypairs": [{"key_file": key, "cert_file": cert}],
                "metadata": {"inline": [self.idp_metadata]} if self.idp_metadata else {},
                "xmlsec_binary": shutil.which("xmlsec1"),
                "allow_unknown_attributes": True,
            }
        )
        return config

    def configure(self, idp_metadata: bytes) -> None:
        self.idp_metadata = idp_metadata.decode()
        self.client = Saml2Client(config=self._config())
        self.idp_entity_id = etree.fromstring(idp_metadata).get("entityID")

    def metadata(self) -> bytes:
        return create_metadata_string(None, config=self._config(), valid=24)

    def login_redirect(self, *, relay_state: str) -> tuple[str, str]:
        request_id, info = self.client.prepare_for_authenticate(
            entityid=self.idp_entity_id, relay_state=relay_state, binding=BINDING_HTTP_REDIRECT
        )
        return dict(info["headers"])["Location"], request_id

    def read_response(self, saml_response: str, request_id: str | None) -> tuple[dict, str]:
        outstanding = {request_id: self.protected_url} if request_id else {}
        try:
            response = self.client.parse_authn_request_response(saml_response, BINDING_HTTP_POST, outstanding)
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises many kinds; the SP refuses
            return {}, f"{type(exc).__name__}: {exc}"
        if response is None:
            return {}, "no response"
        info = response.session_info()
        return {
            "name_id": info["name_id"].text,
            "name_id_format": info["name_id"].format,
            "session_index": info.get("session_index"),
            "attributes": response.ava,
            "_name_id": str(info["name_id"]),
        }, ""

    def logout_redirect(self, session: dict) -> tuple[str, str]:
        """pysaml2 prefers SOAP when the IdP lists it: the logout is then over when this returns."""
        responses = self.client.global_logout(name_id_from_string(session["_name_id"]))
        answer = responses[self.idp_entity_id]
        if isinstance(answer, tuple):  # (binding, http_info): a front-channel binding
            return dict(answer[1]["headers"])["Location"], ""
        if answer is None or not answer.status_ok():
            raise RuntimeError("the IdP refused the SOAP logout")
        self.soap_logouts += 1
        return "", ""

    def read_logout_response(self, url: str, query: dict, form: dict, request_id: str | None) -> str:
        message = query.get("SAMLResponse") or form.get("SAMLResponse")
        binding = BINDING_HTTP_REDIRECT if "SAMLResponse" in query else BINDING_HTTP_POST
        try:
            response = self.client.parse_logout_request_response(message, binding)
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"
        if response is None or response.status_ok() is False:
            return "logout refused"
        return ""

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._files, ignore_errors=True)


__all__ = ["OneLoginApp", "Pysaml2App", "response_algorithms", "sp_keys"]
