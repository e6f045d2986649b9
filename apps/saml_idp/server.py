"""The only module that builds pysaml2 objects: one IdP `Server` per connector, from the database.

A Server is built from the connector's settings and signing key; building one costs ~100 ms, so
each process keeps the ones it built keyed by (connector id, connector updated, key id). Any
change to the connector bumps `updated` and any key change alters the key id, so a stale entry is
never used; nothing is shared that other workers could fail to see.

pysaml2 signs and verifies through `InProcessXmlSecBackend` (no `xmlsec1` processes). The
benchmark's baseline alone asks for pysaml2's default backend.
"""

import atexit
import shutil
import tempfile
import threading
from pathlib import Path
from uuid import UUID

import xmlsec
from django.conf import settings
from lxml import etree
from saml2 import samlp
from saml2.config import IdPConfig
from saml2.saml import NameID
from saml2.server import Server
from saml2.sigver import CryptoBackend, SignatureError
from saml2.xmldsig import SIG_RSA_SHA256

from apps.common.pki import certificate_base64
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.connectors import idp_urls
from apps.connectors.models import Connector
from apps.connectors.saml_algorithms import DIGEST_ALGORITHMS as DIGESTS_BY_NAME
from apps.connectors.saml_algorithms import digest_for_signature
from apps.saml_idp.constants import (
    BINDING_POST,
    BINDING_REDIRECT,
    DS_NS,
    METADATA_NS,
    NAMEID_FORMATS,
    SIGNATURE_ALGORITHMS,
    STATUS_SUCCESS,
)
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.signing import XmlSignatureError, verify_element


class InProcessXmlSecBackend(CryptoBackend):
    """pysaml2's crypto backend interface, served by libxmlsec1 in-process instead of `xmlsec1` runs.

    pysaml2 hands it serialized documents and file names (of certificates it wrote from metadata);
    the private key is held in memory and never written to disk.
    """

    def __init__(self, key: xmlsec.Key | None = None) -> None:
        super().__init__()
        self.key = key

    @property
    def version(self) -> str:
        return xmlsec.__version__

    def sign_statement(self, statement, node_name: str, key_file: str | None, node_id: str | None) -> str:
        if self.key is None:
            raise SignatureError("No signing key is loaded.")
        data = statement if isinstance(statement, bytes) else str(statement).encode()
        root = etree.fromstring(data, parser=_trusted_parser())
        node = root if not node_id or root.get("ID") == node_id else root.xpath("//*[@ID=$id]", id=node_id)[0]
        signature = node.find(f"{{{DS_NS}}}Signature")
        if signature is None:
            raise SignatureError(f"No signature template in {node_name}.")
        context = xmlsec.SignatureContext()
        context.key = self.key
        context.register_id(node, "ID")
        context.sign(signature)
        return etree.tostring(root, encoding="unicode")

    def validate_signature(self, signedtext, cert_file: str, cert_type: str, node_name: str, node_id: str) -> bool:
        if cert_type != "pem":
            raise SignatureError(f"Unsupported certificate type {cert_type}.")
        try:
            root = parse_untrusted_xml(signedtext)
        except UnsafeXMLError as exc:
            raise SignatureError(str(exc)) from exc
        matches = root.xpath("//*[@ID=$id]", id=node_id) if node_id else [root]
        if len(matches) != 1:
            raise SignatureError("The signed element is missing or its ID is not unique.")
        try:
            verify_element(matches[0], Path(cert_file).read_text())
        except XmlSignatureError as exc:
            raise SignatureError(str(exc)) from exc
        return True


def _trusted_parser() -> etree.XMLParser:
    # Only for documents pysaml2 just serialized from our own objects.
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


_servers: dict[tuple, Server] = {}
_servers_lock = threading.Lock()
_MAX_SERVERS = 512
_files_dir: Path | None = None


def _files() -> Path:
    """A private folder for what pysaml2 insists on reading from files: public certificates only."""
    global _files_dir
    if _files_dir is None:
        _files_dir = Path(tempfile.mkdtemp(prefix="idp-portal-saml-"))
        atexit.register(shutil.rmtree, _files_dir, ignore_errors=True)
    return _files_dir


def _certificate_file(key: LoadedKey) -> str:
    path = _files() / f"{key.id}.crt"
    if not path.exists():
        path.write_text(key.certificate_pem)
    return str(path)


def sp_metadata_xml(connector: Connector) -> str:
    """The SP as the connector's settings describe it, as metadata pysaml2 can load."""
    sso = connector.sso
    md, ds = METADATA_NS, DS_NS
    root = etree.Element(f"{{{md}}}EntityDescriptor", nsmap={"md": md, "ds": ds}, entityID=sso.sp_entity_id)
    descriptor = etree.SubElement(
        root,
        f"{{{md}}}SPSSODescriptor",
        protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol",
        AuthnRequestsSigned="true" if sso.require_signed_requests else "false",
    )
    for use, pem in (("signing", sso.sp_signing_cert), ("encryption", sso.sp_encryption_cert)):
        if pem:
            key_descriptor = etree.SubElement(descriptor, f"{{{md}}}KeyDescriptor", use=use)
            data = etree.SubElement(etree.SubElement(key_descriptor, f"{{{ds}}}KeyInfo"), f"{{{ds}}}X509Data")
            etree.SubElement(data, f"{{{ds}}}X509Certificate").text = certificate_base64(pem)
    if sso.slo_url:
        etree.SubElement(
            descriptor,
            f"{{{md}}}SingleLogoutService",
            Binding=sso.slo_binding or BINDING_REDIRECT,
            Location=sso.slo_url,
        )
    etree.SubElement(descriptor, f"{{{md}}}NameIDFormat").text = NAMEID_FORMATS[sso.nameid_format]
    for position, acs in enumerate(sso.acs_urls):
        etree.SubElement(
            descriptor,
            f"{{{md}}}AssertionConsumerService",
            Binding=acs.get("binding") or BINDING_POST,
            Location=acs["url"],
            index=str(acs.get("index", position)),
            isDefault="true" if position == 0 else "false",
        )
    return etree.tostring(root, encoding="unicode")


def _digest_uri(connector: Connector) -> str:
    sso = connector.sso
    return DIGESTS_BY_NAME[sso.digest_algorithm or digest_for_signature(sso.signature_algorithm)]


def _config(connector: Connector, key: LoadedKey, *, key_file: str | None = None) -> IdPConfig:
    algorithm = connector.sso.signature_algorithm
    config = {
        "entityid": connector.idp_entity_id,
        "service": {
            "idp": {
                "endpoints": {
                    "single_sign_on_service": [
                        (connector.sso_url, BINDING_REDIRECT),
                        (connector.sso_url, BINDING_POST),
                    ],
                    "single_logout_service": [
                        (idp_urls.slo_url(connector), BINDING_REDIRECT),
                        (idp_urls.slo_url(connector), BINDING_POST),
                    ],
                },
                # pysaml2 signs with rsa-sha1 unless told otherwise here.
                "signing_algorithm": SIGNATURE_ALGORITHMS.get(algorithm, SIG_RSA_SHA256),
                "digest_algorithm": _digest_uri(connector),
                "want_authn_requests_signed": connector.sso.require_signed_requests,
                "name_id_format": [NAMEID_FORMATS[connector.sso.nameid_format]],
                "policy": {
                    "default": {
                        "lifetime": {"seconds": connector.sso.assertion_lifetime_seconds},
                        "attribute_restrictions": None,
                        "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
                    }
                },
            }
        },
        "cert_file": _certificate_file(key),
        "key_file": key_file,
        "metadata": {"inline": [sp_metadata_xml(connector)] if connector.sso.sp_entity_id else []},
        # Never trust a certificate that a message carries about itself.
        "only_use_keys_in_metadata": True,
        "validate_certificate": False,
        "accepted_time_diff": settings.SAML_IDP_CLOCK_SKEW_SECONDS,
        # Replaced by InProcessXmlSecBackend below; "XMLSecurity" needs no xmlsec1 program to load.
        "crypto_backend": "xmlsec1" if key_file else "XMLSecurity",
        "xmlsec_binary": settings.SAML_IDP_XMLSEC1_BINARY if key_file else None,
    }
    idp_config = IdPConfig()
    idp_config.load(config)
    return idp_config


def idp_server(connector: Connector, key: LoadedKey) -> Server:
    """The connector's pysaml2 IdP, signing in-process with `key`."""
    cache_key = (connector.pk, connector.updated, key.id)
    server = _servers.get(cache_key)
    if server is None:
        server = Server(config=_config(connector, key))
        server.sec.crypto = InProcessXmlSecBackend(key.key)
        with _servers_lock:
            if len(_servers) >= _MAX_SERVERS:
                _servers.clear()
            _servers[cache_key] = server
    return server


def verify_embedded_signature(connector: Connector, key: LoadedKey, xml: bytes, message_type: str) -> None:
    """Verify an SP-signed message (POST binding) against the SP's certificate from its settings.

    pysaml2 applies the SAML XML-DSig profile checks and schema validation; the cryptography runs
    in-process. `message_type` is `authn_request` or `logout_request`.
    """
    server = idp_server(connector, key)
    check = getattr(server.sec, f"correctly_signed_{message_type}")
    try:
        check(xml.decode(), must=True)
    except (SignatureError, XmlSignatureError) as exc:
        raise XmlSignatureError(str(exc.args[0]) if exc.args else "The signature does not verify.") from exc
    except Exception as exc:
        raise XmlSignatureError(f"The signed message could not be checked: {type(exc).__name__}.") from exc


def logout_response_xml(
    connector: Connector, key: LoadedKey, *, in_response_to: str, destination: str, sign: bool, status: str
) -> bytes:
    """A LogoutResponse from pysaml2, signed in-process when `sign` (the POST binding)."""
    server = idp_server(connector, key)
    algorithm = connector.sso.signature_algorithm
    response = server._status_response(
        samlp.LogoutResponse,
        server._issuer(),
        samlp.Status(status_code=samlp.StatusCode(value=status or STATUS_SUCCESS)),
        sign,
        sign_alg=SIGNATURE_ALGORITHMS[algorithm],
        digest_alg=_digest_uri(connector),
        in_response_to=in_response_to,
        destination=destination,
    )
    return str(response).encode()


def baseline_server(connector: Connector, key: LoadedKey, key_file: str) -> Server:
    """A Server on pysaml2's default backend (the `xmlsec1` program): the benchmark's baseline."""
    return Server(config=_config(connector, key, key_file=key_file))


def pysaml2_authn_response(
    server: Server,
    connector: Connector,
    *,
    identity: dict[str, list[str]],
    name_id: str,
    in_response_to: str | None,
    acs_url: str,
    sign_response: bool,
    sign_assertion: bool,
    authn_instant: int,
) -> str:
    """A Response built and signed entirely by pysaml2: the benchmark's comparison point.

    The portal itself builds responses in `responses.py` (pysaml2's object model alone costs more
    than the whole signed response there).
    """
    algorithm = connector.sso.signature_algorithm
    response = server.create_authn_response(
        identity,
        in_response_to,
        acs_url,
        connector.sso.sp_entity_id,
        name_id=NameID(format=NAMEID_FORMATS[connector.sso.nameid_format], text=name_id),
        authn={
            "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
            "authn_instant": authn_instant,
        },
        sign_response=sign_response,
        sign_assertion=sign_assertion,
        sign_alg=SIGNATURE_ALGORITHMS[algorithm],
        digest_alg=_digest_uri(connector),
    )
    return str(response)


def forget_servers(connector_id: UUID | None = None) -> None:
    """Drop cached Servers (tests that change keys underneath use it)."""
    with _servers_lock:
        for cache_key in [k for k in _servers if connector_id is None or k[0] == connector_id]:
            del _servers[cache_key]
