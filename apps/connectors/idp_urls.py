"""The portal's IdP URLs for a connector. They embed the slug, which is why it never changes."""

from django.conf import settings


def idp_base(slug: str) -> str:
    return f"{settings.PORTAL_BASE_URL}/saml/idp/{slug}"


def idp_metadata_url(slug: str) -> str:
    return f"{idp_base(slug)}/metadata"


def idp_entity_id(slug: str) -> str:
    # The metadata URL doubles as the entity ID, so that an SP can fetch what it is told to trust.
    return idp_metadata_url(slug)


def idp_sso_url(slug: str) -> str:
    return f"{idp_base(slug)}/sso"


def idp_slo_url(slug: str) -> str:
    return f"{idp_base(slug)}/slo"
