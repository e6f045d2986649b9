"""Reads of upstream IdP configuration."""

from apps.saml_sp.models import UpstreamIdentityProvider


def enabled_upstreams() -> list[UpstreamIdentityProvider]:
    return list(UpstreamIdentityProvider.objects.filter(enabled=True).exclude(entity_id="").order_by("name"))


def enforced_upstream() -> UpstreamIdentityProvider | None:
    return (
        UpstreamIdentityProvider.objects.filter(enabled=True, enforced=True)
        .exclude(entity_id="")
        .order_by("name")
        .first()
    )


def upstream_by_slug(slug: str) -> UpstreamIdentityProvider | None:
    return UpstreamIdentityProvider.objects.filter(slug=slug, enabled=True).exclude(entity_id="").first()
