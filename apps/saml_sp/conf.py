"""djangosaml2's config loader (`SAML_CONFIG_LOADER`): one pysaml2 SP configuration per upstream IdP,
built from its database row on every request (no per-process cache that other workers miss).

The upstream is the one named by the URL (/saml/sp/<slug>/...). Its metadata is inline (fetched
and checked when an admin saved it), so pysaml2 never fetches anything by itself. Delegated login's
key pair (apps.saml_sp.keys) decrypts assertions (`encryption_keypairs`); its certificate is in the
SP metadata, with the encryption algorithms the SP reads.
"""

from django.conf import settings
from django.http import Http404, HttpRequest
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from apps.connectors.saml_algorithms import DATA_ALGORITHMS, KEY_TRANSPORTS
from apps.saml_sp.keys import certificate_file, decryption_sp_keys, key_files, published_sp_keys
from apps.saml_sp.models import UpstreamIdentityProvider
from apps.saml_sp.selectors import upstream_by_slug

_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
_DS = "http://www.w3.org/2000/09/xmldsig#"
# What pysaml2's decryption (the xmlsec1 1.2 program) reads, strongest first. XML Encryption 1.1's
# RSA-OAEP is not among them: that xmlsec1 cannot unwrap it.
SP_DATA_ALGORITHMS = ("aes256-gcm", "aes128-gcm", "aes256-cbc", "aes128-cbc")
SP_KEY_TRANSPORTS = ("rsa-oaep-mgf1p",)


def sp_urls(upstream: UpstreamIdentityProvider) -> dict[str, str]:
    base = f"{settings.PORTAL_BASE_URL}/saml/sp/{upstream.slug}"
    return {
        "entity_id": f"{base}/metadata/",
        "acs": f"{base}/acs/",
        "login": f"{base}/login/",
        "slo": f"{base}/slo/",
    }


def _config_dict(upstream: UpstreamIdentityProvider) -> dict:
    urls = sp_urls(upstream)
    return {
        "entityid": urls["entity_id"],
        "name": "idp-portal",
        "service": {
            "sp": {
                "name": "idp-portal",
                "endpoints": {
                    "assertion_consumer_service": [(urls["acs"], BINDING_HTTP_POST)],
                    "single_logout_service": [(urls["slo"], BINDING_HTTP_REDIRECT), (urls["slo"], BINDING_HTTP_POST)],
                },
                # Off by default: only answers to our own AuthnRequests (InResponseTo checked, each
                # used once). On, a Response without InResponseTo is accepted too, under the checks
                # of apps.saml_sp.assertions (which also refuse an InResponseTo that is not ours).
                "allow_unsolicited": upstream.accept_idp_initiated,
                "authn_requests_signed": False,
                "logout_requests_signed": True,
                "want_response_signed": False,
                "want_assertions_signed": False,
                # ...but one of the two must carry a valid signature from the IdP's metadata key.
                "want_assertions_or_response_signed": True,
                "signing_algorithm": SIG_RSA_SHA256,
                "digest_algorithm": DIGEST_SHA256,
                "name_id_format_allow_create": False,
            }
        },
        "metadata": {"inline": [upstream.metadata_xml]},
        "accepted_time_diff": settings.SAML_IDP_CLOCK_SKEW_SECONDS,
        "xmlsec_binary": settings.SAML_IDP_XMLSEC1_BINARY,
        "allow_unknown_attributes": True,
        "only_use_keys_in_metadata": True,
        "debug": False,
    }


def sp_config(upstream: UpstreamIdentityProvider) -> SPConfig:
    """The configuration the SP runs with: every key that may decrypt an assertion now."""
    config = _config_dict(upstream)
    config["encryption_keypairs"] = [
        {"key_file": files.key_file, "cert_file": files.cert_file}
        for files in (key_files(key) for key in decryption_sp_keys())
    ]
    conf = SPConfig()
    conf.load(config)
    return conf


def config_loader(request: HttpRequest | None) -> SPConfig:
    slug = getattr(getattr(request, "resolver_match", None), "kwargs", {}).get("slug", "")
    upstream = upstream_by_slug(slug) if slug else None
    if upstream is None:
        raise Http404("No upstream identity provider at this address.")
    return sp_config(upstream)


def sp_metadata_xml(upstream: UpstreamIdentityProvider) -> str:
    """The SP metadata for `upstream`: entity ID, ACS, SLO (Redirect, POST), and delegated login's
    published certificates (active, then next) for signing and for encryption, each encryption key
    listing the algorithms the SP reads."""
    published = published_sp_keys()
    config = _config_dict(upstream)
    config["cert_file"] = certificate_file(published[0])
    config["additional_cert_files"] = [certificate_file(key) for key in published[1:]]
    config["encryption_keypairs"] = [{"cert_file": certificate_file(key)} for key in published]
    conf = SPConfig()
    conf.load(config)
    root = etree.fromstring(str(entity_descriptor(conf)).encode())
    for key_descriptor in root.iter(f"{{{_MD}}}KeyDescriptor"):
        if key_descriptor.get("use") != "encryption":
            continue
        for name in SP_DATA_ALGORITHMS:
            etree.SubElement(key_descriptor, f"{{{_MD}}}EncryptionMethod", Algorithm=DATA_ALGORITHMS[name])
        for name in SP_KEY_TRANSPORTS:
            method = etree.SubElement(key_descriptor, f"{{{_MD}}}EncryptionMethod", Algorithm=KEY_TRANSPORTS[name])
            etree.SubElement(method, f"{{{_DS}}}DigestMethod", Algorithm=f"{_DS}sha1")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


__all__ = ["BINDING_HTTP_REDIRECT", "config_loader", "sp_config", "sp_metadata_xml", "sp_urls"]
