"""djangosaml2's config loader (`SAML_CONFIG_LOADER`): one pysaml2 SP configuration per upstream IdP,
built from its database row on every request (no per-process cache that other workers miss).

The upstream is the one named by the URL (/saml/sp/<slug>/...). Its metadata is inline (fetched
and checked when an admin saved it), so pysaml2 never fetches anything by itself.
"""

from django.conf import settings
from django.http import Http404, HttpRequest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import SPConfig
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from apps.saml_sp.models import UpstreamIdentityProvider
from apps.saml_sp.selectors import upstream_by_slug


def sp_urls(upstream: UpstreamIdentityProvider) -> dict[str, str]:
    base = f"{settings.PORTAL_BASE_URL}/saml/sp/{upstream.slug}"
    return {"entity_id": f"{base}/metadata/", "acs": f"{base}/acs/", "login": f"{base}/login/"}


def sp_config(upstream: UpstreamIdentityProvider) -> SPConfig:
    urls = sp_urls(upstream)
    config = {
        "entityid": urls["entity_id"],
        "name": "idp-portal",
        "service": {
            "sp": {
                "name": "idp-portal",
                "endpoints": {"assertion_consumer_service": [(urls["acs"], BINDING_HTTP_POST)]},
                # Only answers to our own AuthnRequests (InResponseTo checked, each used once).
                "allow_unsolicited": False,
                "authn_requests_signed": False,
                "logout_requests_signed": False,
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
    conf = SPConfig()
    conf.load(config)
    return conf


def config_loader(request: HttpRequest | None) -> SPConfig:
    slug = getattr(getattr(request, "resolver_match", None), "kwargs", {}).get("slug", "")
    upstream = upstream_by_slug(slug) if slug else None
    if upstream is None:
        raise Http404("No upstream identity provider at this address.")
    return sp_config(upstream)


__all__ = ["BINDING_HTTP_REDIRECT", "config_loader", "sp_config", "sp_urls"]
