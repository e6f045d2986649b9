"""Reads of upstream IdP configuration."""

from urllib.parse import urlencode

from django.urls import reverse

from apps.portal.sign_in_options import SignInOption
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


def upstream_sign_in_options(next_url: str) -> list[SignInOption]:
    """A "Sign in with <IdP>" button for each enabled upstream, in one query."""
    return [
        SignInOption(
            name=upstream.name,
            url=f"{reverse('saml_sp:login', args=[upstream.slug])}?{urlencode({'next': next_url})}",
            enforced=upstream.enforced,
        )
        for upstream in enabled_upstreams()
    ]
