"""A connector's OpenID Connect settings: what an admin may set (validated here, every error
collected), the client ID and the client secret (shown once, stored as a SHA-256 hash, rotated
with an overlap during which the previous secret still works).

apps.connectors.services creates and updates the settings with the connector; apps.oidc reads
them to speak the protocol.
"""

import datetime
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.common.tokens import hash_secret
from apps.connectors.models import Connector, OidcClientType, OidcSettings, OidcSubject
from apps.connectors.validation import SettingErrors, validate_app_url

OIDC_FIELDS = (
    "client_type",
    "redirect_uris",
    "post_logout_redirect_uris",
    "frontchannel_logout_uri",
    "login_url",
    "allowed_scopes",
    "sub_source",
    "access_token_lifetime_seconds",
    "id_token_lifetime_seconds",
    "refresh_token_lifetime_seconds",
    "require_mfa",
)
# Read-only in the API and the console: derived, or set only through their own service.
OIDC_READ_ONLY = ("client_id", "client_secret_set", "client_secret_prefix", "redirect_uri_pattern")
SUPPORTED_SCOPES = ("openid", "profile", "email", "groups", "offline_access")
MAX_REDIRECT_URIS = 20
LIFETIME_LIMITS = {
    "access_token_lifetime_seconds": (60, 24 * 3600),
    "id_token_lifetime_seconds": (60, 24 * 3600),
    # 0: no refresh tokens at all.
    "refresh_token_lifetime_seconds": (0, 365 * 24 * 3600),
}


# --- Validation ---------------------------------------------------------------------------------


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A catalog pattern such as `https://{host}/login/generic_oauth` as an exact-match regex;
    {host} is a host name with an optional port."""
    parts = re.split(r"(\{host\})", pattern)
    body = "".join(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?" if part == "{host}" else re.escape(part) for part in parts)
    return re.compile(f"^{body}$")


def validate_redirect_uri(uri: str, *, what: str = "redirect URI") -> str:
    """https, or http on a loopback address; no fragment (RFC 6749 3.1.2), no credentials."""
    uri = validate_app_url(uri, what=what)
    if "#" in uri:
        raise ValueError(f"The {what} must not contain a fragment (#).")
    return uri


def _clean_uri_list(value: Any, key: str, errors: SettingErrors, *, what: str, pattern: str = "") -> list[str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or len(value) > MAX_REDIRECT_URIS:
        errors.add(key, f"Give a list of at most {MAX_REDIRECT_URIS} URIs.")
        return []
    cleaned: list[str] = []
    for item in value:
        try:
            uri = validate_redirect_uri(str(item), what=what)
        except ValueError as exc:
            errors.add(key, str(exc))
            continue
        if pattern and not pattern_regex(pattern).match(uri):
            errors.add(key, f"{uri} does not have the shape this app documents: {pattern}")
            continue
        if uri not in cleaned:
            cleaned.append(uri)
    return cleaned


def _clean_scopes(value: Any, errors: SettingErrors) -> list[str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.add("oidc.allowed_scopes", "Give a list of scopes.")
        return []
    unknown = [scope for scope in value if scope not in SUPPORTED_SCOPES]
    if unknown:
        errors.add("oidc.allowed_scopes", f"Unknown scope {unknown[0]!r}; choose from {', '.join(SUPPORTED_SCOPES)}.")
        return []
    if "openid" not in value:
        errors.add("oidc.allowed_scopes", "openid is always allowed: an OpenID Connect sign-in asks for it.")
        return []
    return [scope for scope in SUPPORTED_SCOPES if scope in value]


def apply_oidc(oidc: OidcSettings, changes: dict, errors: SettingErrors) -> None:
    """Set validated values on `oidc` (unsaved); every problem is collected in `errors`."""
    for field, value in changes.items():
        key = f"oidc.{field}"
        if field not in OIDC_FIELDS:
            errors.add(key, "Unknown or read-only field.")
        elif field == "redirect_uris":
            oidc.redirect_uris = _clean_uri_list(
                value, key, errors, what="redirect URI", pattern=oidc.redirect_uri_pattern
            )
        elif field == "post_logout_redirect_uris":
            oidc.post_logout_redirect_uris = _clean_uri_list(value, key, errors, what="post-logout redirect URI")
        elif field in ("frontchannel_logout_uri", "login_url"):
            text = str(value or "").strip()
            if text:
                try:
                    text = validate_redirect_uri(text, what=field.replace("_", " "))
                except ValueError as exc:
                    errors.add(key, str(exc))
                    continue
            setattr(oidc, field, text)
        elif field == "allowed_scopes":
            oidc.allowed_scopes = _clean_scopes(value, errors) or oidc.allowed_scopes
        elif field in LIFETIME_LIMITS:
            low, high = LIFETIME_LIMITS[field]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                errors.add(key, f"A number of seconds from {low} to {high}.")
            else:
                setattr(oidc, field, value)
        elif field == "require_mfa":
            if not isinstance(value, bool):
                errors.add(key, "Must be true or false.")
            else:
                oidc.require_mfa = value
        else:
            choices = {"client_type": OidcClientType.values, "sub_source": OidcSubject.values}[field]
            if value not in choices:
                errors.add(key, f"Choose one of {', '.join(choices)}.")
            else:
                setattr(oidc, field, value)


def oidc_snapshot(oidc: OidcSettings) -> dict[str, Any]:
    """The settings for the audit trail: the secret reduced to whether it is set."""
    snapshot = {field: getattr(oidc, field) for field in OIDC_FIELDS}
    snapshot["client_id"] = oidc.client_id
    snapshot["client_secret_set"] = bool(oidc.client_secret_hash)
    return snapshot


# --- Client ID and secret -----------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedClientSecret:
    secret: str
    previous_valid_until: datetime.datetime | None


def new_client_id() -> str:
    return secrets.token_urlsafe(24)


def _set_secret(oidc: OidcSettings) -> str:
    secret = f"idp_oidc_{secrets.token_urlsafe(32)}"
    oidc.client_secret_hash = hash_secret(secret)
    oidc.client_secret_prefix = secret[:14]
    oidc.client_secret_created = timezone.now()
    return secret


def new_oidc_settings(connector: Connector, defaults: dict) -> OidcSettings:
    """Unsaved settings from a catalog template's `oidc` section (its redirect URI pattern kept)."""
    pattern = str(defaults.get("redirect_uri_pattern", ""))
    oidc = OidcSettings(connector=connector, client_id=new_client_id(), redirect_uri_pattern=pattern)
    for field, value in defaults.items():
        if field in OIDC_FIELDS:
            setattr(oidc, field, value)
    if "{host}" not in pattern and pattern and not oidc.redirect_uris:
        oidc.redirect_uris = [pattern]  # a fixed redirect URI: nothing for the admin to fill in
    return oidc


def issue_initial_secret(oidc: OidcSettings) -> str | None:
    """A confidential client's first secret (set on the unsaved settings); None for a public one."""
    if oidc.is_public or oidc.client_secret_hash:
        return None
    return _set_secret(oidc)


def client_type_changed(oidc: OidcSettings) -> str | None:
    """After the client type changed: a public client holds no secret; a confidential one that has
    none gets one (returned, to be shown once)."""
    if oidc.is_public:
        oidc.client_secret_hash = oidc.client_secret_prefix = oidc.previous_secret_hash = ""
        oidc.client_secret_created = oidc.previous_secret_expires = None
        return None
    return issue_initial_secret(oidc)


@transaction.atomic
def oidc_client_secret_rotate(
    *, actor: Actor, connector: Connector, overlap_seconds: int | None = None
) -> IssuedClientSecret:
    """A new client secret, shown once. The previous one keeps working for `overlap_seconds`
    (OIDC_SECRET_OVERLAP_SECONDS by default; 0 ends it at once), so the app can be updated first."""
    oidc = OidcSettings.objects.select_for_update().filter(connector=connector).first()
    if oidc is None:
        raise ApplicationError("This connector does not sign in with OpenID Connect.", code="not_oidc")
    if oidc.is_public:
        raise ApplicationError(
            "A public client has no secret: it proves itself with PKCE. Make it confidential first.",
            code="public_client",
        )
    overlap = settings.OIDC_SECRET_OVERLAP_SECONDS if overlap_seconds is None else overlap_seconds
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= 30 * 24 * 3600:
        raise ApplicationError("The overlap is a number of seconds from 0 to 2592000 (30 days).", code="overlap")
    now = timezone.now()
    valid_until = None
    if oidc.client_secret_hash and overlap:
        valid_until = now + datetime.timedelta(seconds=overlap)
        oidc.previous_secret_hash, oidc.previous_secret_expires = oidc.client_secret_hash, valid_until
    else:
        oidc.previous_secret_hash, oidc.previous_secret_expires = "", None
    secret = _set_secret(oidc)
    oidc.save(
        update_fields=[
            "client_secret_hash",
            "client_secret_prefix",
            "client_secret_created",
            "previous_secret_hash",
            "previous_secret_expires",
        ]
    )
    audit_record(
        actor=actor,
        action="connector.oidc.secret_rotate",
        target=connector,
        after={
            "client_secret_prefix": oidc.client_secret_prefix,
            "previous_valid_until": valid_until.isoformat() if valid_until else None,
        },
    )
    return IssuedClientSecret(secret=secret, previous_valid_until=valid_until)


def client_secret_matches(oidc: OidcSettings, presented: str, *, now: datetime.datetime | None = None) -> bool:
    """Whether `presented` is the client's secret, or its previous one within the overlap."""
    if not presented or not oidc.client_secret_hash:
        return False
    digest = hash_secret(presented)
    if constant_time_compare(digest, oidc.client_secret_hash):
        return True
    previous_valid = oidc.previous_secret_expires is not None and (now or timezone.now()) < oidc.previous_secret_expires
    return (
        bool(oidc.previous_secret_hash) and previous_valid and constant_time_compare(digest, oidc.previous_secret_hash)
    )
