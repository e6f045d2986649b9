"""An upstream SAML IdP for delegated-login tests: pysaml2's own IdP (`saml2.server.Server`) behind
a small WSGI app on loopback. Nobody here wrote its SAML: it parses our AuthnRequests and signs
its Responses with pysaml2 (RSA-SHA256, through the `xmlsec1` program).

GET /metadata       its metadata (entity ID = this URL)
GET /sso            HTTP-Redirect AuthnRequest in; a sign-in form out
POST /login         the form: username + password -> an auto-posting signed Response to the ACS
"""

import base64
import html
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

from apps.saml_idp.keys import generate_key_pair

_key_pair = None


def _keys():
    global _key_pair
    if _key_pair is None:
        _key_pair = generate_key_pair(key_size=2048, validity_days=30, common_name="upstream test IdP")
    return _key_pair


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # A browser's speculative connections must not hold up the requests that follow them.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass


@dataclass
class UpstreamUser:
    password: str
    name_id: str
    attributes: dict[str, list[str]] = field(default_factory=dict)


class UpstreamIdP:
    def __init__(self) -> None:
        self.server: WSGIServer = make_server(
            "127.0.0.1", 0, self.app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.entity_id = f"{self.base}/metadata"
        self.users: dict[str, UpstreamUser] = {}
        self.requests: list[dict] = []
        self.responses: list[str] = []
        self.logout_requests: list[str] = []
        self.session_index = ""
        self._files = Path(tempfile.mkdtemp(prefix="upstream-idp-"))
        keys = _keys()
        (self._files / "idp.key").write_text(keys.private_key_pem)
        (self._files / "idp.crt").write_text(keys.certificate_pem)
        self.sp_metadata: str | None = None
        self._idp: Server | None = None

    # --- configuration ---

    def _config(self) -> IdPConfig:
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "service": {
                    "idp": {
                        "name": "Upstream test IdP",
                        "endpoints": {
                            "single_sign_on_service": [
                                (f"{self.base}/sso", BINDING_HTTP_REDIRECT),
                                (f"{self.base}/sso", BINDING_HTTP_POST),
                            ],
                            "single_logout_service": [(f"{self.base}/slo", BINDING_HTTP_REDIRECT)],
                        },
                        "signing_algorithm": SIG_RSA_SHA256,
                        "digest_algorithm": DIGEST_SHA256,
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "attribute_restrictions": None,
                                "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
                            }
                        },
                    }
                },
                "key_file": str(self._files / "idp.key"),
                "cert_file": str(self._files / "idp.crt"),
                "metadata": {"inline": [self.sp_metadata]} if self.sp_metadata else {},
                "xmlsec_binary": shutil.which("xmlsec1"),
                "allow_unknown_attributes": True,
            }
        )
        return config

    def metadata(self) -> str:
        return create_metadata_string(None, config=self._config(), valid=24).decode()

    def trust_sp(self, sp_metadata: str) -> None:
        self.sp_metadata = sp_metadata
        self._idp = Server(config=self._config())

    def add_user(self, username: str, password: str, *, email: str, **attributes: list[str]) -> None:
        self.users[username] = UpstreamUser(
            password=password, name_id=email, attributes={"mail": [email], **attributes}
        )

    # --- SAML ---

    def answer(
        self, saml_request: str, relay_state: str, username: str, *, sha1: bool = False, encrypt: bool = False
    ) -> tuple[str, dict[str, str]]:
        """(ACS URL, form fields) of a signed Response for `username` to a Redirect-binding request."""
        assert self._idp is not None, "call trust_sp() first"
        parsed = self._idp.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
        request = parsed.message
        self.requests.append(
            {"id": request.id, "issuer": request.issuer.text, "acs": request.assertion_consumer_service_url}
        )
        return self.respond(
            username,
            acs=request.assertion_consumer_service_url,
            sp_entity_id=request.issuer.text,
            in_response_to=request.id,
            relay_state=relay_state,
            sha1=sha1,
            encrypt=encrypt,
        )

    def respond(
        self,
        username: str,
        *,
        acs: str,
        sp_entity_id: str,
        in_response_to: str | None = None,
        relay_state: str = "",
        sha1: bool = False,
        encrypt: bool = False,
        encrypt_to: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """A signed Response for `username`; without `in_response_to`, an unsolicited one (the IdP's
        own launcher). `encrypt` encrypts the assertion to the SP's metadata certificate (or `encrypt_to`)."""
        user = self.users[username]
        response = self._idp.create_authn_response(
            identity=user.attributes,
            in_response_to=in_response_to,
            destination=acs,
            sp_entity_id=sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user.name_id),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_response=True,
            sign_assertion=True,
            sign_alg=SIG_RSA_SHA1 if sha1 else SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA1 if sha1 else DIGEST_SHA256,
            encrypt_assertion=encrypt,
            encrypt_cert_assertion=encrypt_to,
        )
        # pysaml2 chooses the SessionIndex of the AuthnStatement itself.
        found = re.search(r'SessionIndex="([^"]+)"', str(response))  # none to see once encrypted
        self.session_index = found.group(1) if found else ""
        encoded = base64.b64encode(str(response).encode()).decode()
        self.responses.append(encoded)
        return acs, {"SAMLResponse": encoded, "RelayState": relay_state}

    def logout_request_url(
        self, slo_url: str, sp_entity_id: str, *, name_id: str, session_index: str | None, sign: bool = False
    ) -> str:
        """A LogoutRequest from this IdP to the SP, in the Redirect binding (signed or not)."""
        assert self._idp is not None, "call trust_sp() first"
        request_id, request = self._idp.create_logout_request(
            destination=slo_url,
            issuer_entity_id=sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
            session_indexes=[session_index] if session_index else None,
            sign=False,
        )
        info = self._idp.apply_binding(
            BINDING_HTTP_REDIRECT, str(request), destination=slo_url, relay_state="", sign=sign, sigalg=SIG_RSA_SHA256
        )
        self.logout_requests.append(request_id)
        return dict(info["headers"])["Location"]

    def answer_logout(self, query: dict[str, str]) -> tuple[object, str]:
        """Parse the SP's LogoutRequest (its Redirect signature checked against the SP metadata) and
        answer Success: (the parsed request, the LogoutResponse URL)."""
        assert self._idp is not None, "call trust_sp() first"
        self._idp.config._idp_want_authn_requests_signed = True  # makes pysaml2 check Redirect signatures
        try:
            parsed = self._idp.parse_logout_request(
                query["SAMLRequest"],
                BINDING_HTTP_REDIRECT,
                relay_state=query.get("RelayState"),
                sigalg=query.get("SigAlg"),
                signature=query.get("Signature"),
            )
        finally:
            self._idp.config._idp_want_authn_requests_signed = False
        response = self._idp.create_logout_response(parsed.message, [BINDING_HTTP_REDIRECT], sign=False)
        destination = self._idp.config.metadata.single_logout_service(
            parsed.message.issuer.text, BINDING_HTTP_REDIRECT, "spsso"
        )[0]["location"]
        info = self._idp.apply_binding(
            BINDING_HTTP_REDIRECT, str(response), destination=destination, response=True, sign=True
        )
        return parsed.message, dict(info["headers"])["Location"]

    # --- HTTP ---

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/metadata":
            start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
            return [self.metadata().encode()]
        if path == "/sso":
            query = {key: values[0] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
            fields = "".join(
                f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
                for name in ("SAMLRequest", "RelayState")
            )
            body = (
                "<!doctype html><title>Upstream IdP</title><h1>Upstream IdP sign-in</h1>"
                f'<form method="post" action="/login">{fields}'
                '<label>User <input name="username" id="upstream-username"></label>'
                '<label>Password <input name="password" type="password" id="upstream-password"></label>'
                '<button type="submit">Sign in upstream</button></form>'
            )
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body.encode()]
        if path == "/login" and environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = {key: values[0] for key, values in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
            user = self.users.get(form.get("username", ""))
            if user is None or user.password != form.get("password"):
                start_response("401 Unauthorized", [("Content-Type", "text/plain")])
                return [b"wrong upstream password"]
            acs, fields = self.answer(form["SAMLRequest"], form.get("RelayState", ""), form["username"])
            hidden = "".join(
                f'<input type="hidden" name="{name}" value="{html.escape(value)}">' for name, value in fields.items()
            )
            body = (
                f'<!doctype html><body><form method="post" action="{html.escape(acs)}">{hidden}'
                "<button>Continue</button></form><script>document.forms[0].submit()</script></body>"
            )
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body.encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self._files, ignore_errors=True)


def redirect_query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
