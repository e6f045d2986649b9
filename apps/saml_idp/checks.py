"""The SAML IdP's consistency checks on a connector, registered with apps.connectors.checks."""

from datetime import timedelta

from django.utils import timezone

from apps.connectors.checks import CheckResult, Level
from apps.connectors.models import Connector
from apps.saml_idp.keys import current_signing_key
from apps.saml_idp.models import KeyScope

KEY_EXPIRY_WARNING_DAYS = 60


def signing_key_expiry(connector: Connector) -> list[CheckResult]:
    if not connector.has_sso:
        return []
    key = current_signing_key(connector)
    if key is None:
        return []  # the portal generates its first key when it is first needed
    whose = "This connector's own signing key" if key.scope == KeyScope.CONNECTOR else "The portal's signing key"
    left = key.not_after - timezone.now()
    if left <= timedelta(0):
        return [
            CheckResult(
                "signing_key_expired",
                Level.ERROR,
                f"{whose} expired on {key.not_after:%Y-%m-%d}: apps that check certificate dates refuse sign-ins. "
                "Rotate the key.",
                "sso",
            )
        ]
    if left <= timedelta(days=KEY_EXPIRY_WARNING_DAYS):
        return [
            CheckResult(
                "signing_key_expiring",
                Level.WARNING,
                f"{whose} expires on {key.not_after:%Y-%m-%d} ({left.days} days from now). Create the next key, "
                "let the app pick it up from the metadata, then rotate.",
                "sso",
            )
        ]
    return []
