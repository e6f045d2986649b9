"""Reads for the portal's pages."""

import datetime
from dataclasses import dataclass

from django.db.models import Q
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.connectors.models import Connector, ConnectorKind
from apps.connectors.selectors import connectors_for_user
from apps.directory.models import User
from apps.directory.selectors import user_get_by_email, user_get_by_username
from apps.portal.models import PortalSession, WebAuthnCredential
from apps.portal.policy import sign_in_policy

# Above this many tiles the launchpad shows its search box.
SEARCH_THRESHOLD = 8


@dataclass(frozen=True)
class Tile:
    name: str
    description: str
    logo_url: str
    url: str
    kind: str
    opens_new_tab: bool


def sign_in_account(identifier: str) -> User | None:
    """The account a sign-in names: the username (case-insensitive) first, then the email.

    The one resolution for the password check (PortalBackend) and the lockout counter
    (lockout.attempted_username), so that failures are charged to the account whose password
    was checked, even when one person's username is another person's email.
    """
    identifier = identifier.strip()
    if not identifier:
        return None
    user = user_get_by_username(identifier)
    if user is None and "@" in identifier:
        user = user_get_by_email(identifier)
    return user


def _logo_url(connector: Connector) -> str:
    logo = connector.logo or "connectors/logos/bookmark.svg"
    return logo if logo.startswith("https://") else static(logo)


def launchpad_tiles(user: User, *, search: str = "") -> list[Tile]:
    """The user's apps: SAML apps start IdP-initiated SSO, OIDC apps their sign-in, bookmarks open their URL.

    SCIM-only connectors are provisioning targets with nothing to open, so they have no tile.
    """
    connectors = connectors_for_user(user).filter(
        kind__in=[
            ConnectorKind.SAML,
            ConnectorKind.SAML_SCIM,
            ConnectorKind.OIDC,
            ConnectorKind.OIDC_SCIM,
            ConnectorKind.BOOKMARK,
        ]
    )
    if search:
        connectors = connectors.filter(Q(name__icontains=search) | Q(description__icontains=search))
    tiles = []
    for connector in connectors:
        if connector.kind == ConnectorKind.BOOKMARK:
            if not connector.bookmark_url:
                continue
            tiles.append(
                Tile(
                    connector.name,
                    connector.description,
                    _logo_url(connector),
                    connector.bookmark_url,
                    "bookmark",
                    True,
                )
            )
        elif connector.has_oidc:
            # The app's own login URL when it has one, else its authorization request (apps.oidc).
            url = reverse("oidc:launch", args=[connector.slug])
            tiles.append(Tile(connector.name, connector.description, _logo_url(connector), url, "oidc", False))
        else:
            url = reverse("saml_idp:launch", args=[connector.slug])
            tiles.append(Tile(connector.name, connector.description, _logo_url(connector), url, "saml", False))
    return tiles


@dataclass(frozen=True)
class MfaSummary:
    totp_confirmed: bool
    totp_last_used: object
    recovery_codes_left: int
    passkeys: list[WebAuthnCredential]


def mfa_summary(user: User) -> MfaSummary:
    totp = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    codes = StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
    return MfaSummary(
        totp_confirmed=totp is not None,
        totp_last_used=getattr(totp, "last_used_at", None),
        recovery_codes_left=codes,
        passkeys=list(WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created")),
    )


def user_sessions(user: User) -> list[PortalSession]:
    """The user's portal sessions that can still be alive (younger than the policy's session lifetime)."""
    oldest = timezone.now() - datetime.timedelta(seconds=sign_in_policy().session_lifetime_seconds)
    return list(PortalSession.objects.filter(user=user, created__gte=oldest).order_by("-created")[:50])
