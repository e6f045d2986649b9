"""Rules for what an admin gives a connector: URLs, its fields, its SSO and Identity Management
settings. The `_apply_*` functions set validated values on unsaved settings and collect every error,
so one answer names every problem (apps.connectors.services saves and audits)."""

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.text import slugify

from apps.common.crypto import encrypt_secret
from apps.common.errors import ApplicationError
from apps.common.http import OutboundURLError, check_outbound_url, is_loopback_host
from apps.common.pki import CertificateError, normalize_certificate_pem
from apps.connectors.metadata import BINDING_POST
from apps.connectors.models import (
    Connector,
    ConnectorKind,
    Deprovision,
    DigestAlgorithm,
    EncryptionAlgorithm,
    KeyTransport,
    NameIdFormat,
    NameIdProperty,
    ProvisioningOperation,
    ProvisioningSettings,
    SignatureAlgorithm,
    SsoSettings,
    UpdateMethod,
)

MAX_URL_LENGTH = 2000


def validate_app_url(url: str, *, what: str = "URL", allow_http: bool = False) -> str:
    """An https URL (http only for loopback hosts, or anywhere when `allow_http`)."""
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"The {what} is longer than {MAX_URL_LENGTH} characters.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"}:
        raise ValueError(f"The {what} must start with https:// (not {scheme or 'a relative path'}).")
    if not parts.hostname:
        raise ValueError(f"The {what} has no host.")
    if parts.username or parts.password:
        raise ValueError(f"The {what} must not contain credentials.")
    if any(ord(char) < 0x21 for char in url):
        raise ValueError(f"The {what} contains spaces or control characters.")
    if scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
        raise ValueError(f"The {what} must use https (http is allowed only for 127.0.0.1, ::1 and localhost).")
    return url


CONNECTOR_FIELDS = ("name", "description", "logo", "enabled", "bookmark_url")
# Fixed when the connector is created: the IdP URLs that admins paste into the app derive from them.
FIXED_FIELDS = ("slug", "idp_entity_id", "sso_url", "kind", "template")
SSO_FIELDS = (
    "sp_entity_id",
    "acs_urls",
    "sp_login_url",
    "slo_url",
    "slo_binding",
    "nameid_format",
    "nameid_property",
    "sign_response",
    "sign_assertion",
    "signature_algorithm",
    "allow_sha1",
    "require_signed_requests",
    "sp_signing_cert",
    "sp_encryption_cert",
    "encrypt_assertions",
    "encrypt_name_id",
    "encryption_algorithm",
    "key_transport",
    "digest_algorithm",
    "slo_soap_url",
    "sp_metadata_url",
    "assertion_lifetime_seconds",
    "session_lifetime_seconds",
    "relay_state_urls",
    "default_relay_state",
)
PROVISIONING_FIELDS = (
    "deprovision_unmanaged",
    "deprovision_threshold_count",
    "deprovision_threshold_percent",
    "enabled",
    "base_url",
    "token",
    "operations",
    "deprovision",
    "update_method",
    "rate_limit_per_second",
    "group_members_per_request",
)
MAX_ACS_URLS = 20
MAX_GROUP_MEMBERS_PER_REQUEST = 10_000
MAX_RELAY_STATE_URLS = 50


class FixedFieldError(ApplicationError):
    def __init__(self, field: str) -> None:
        super().__init__(
            f"{field} is fixed when the connector is created and cannot be edited; "
            "delete the connector and create it again to change it.",
            code="immutable",
            extra={"field": field},
        )


class SettingErrors:
    """Collects field errors under dotted names (`sso.acs_urls`) and raises them together."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(
                {field: [ValidationError(m) for m in messages] for field, messages in self.errors.items()}
            )


# --- Validation of nested settings --------------------------------------------------------------


def _clean_acs_urls(value: Any, errors: SettingErrors) -> list[dict]:
    if not isinstance(value, list):
        errors.add("sso.acs_urls", "Give a list of {url, binding, index}.")
        return []
    if len(value) > MAX_ACS_URLS:
        errors.add("sso.acs_urls", f"At most {MAX_ACS_URLS} ACS URLs.")
        return []
    cleaned: list[dict] = []
    seen_indexes: set[int] = set()
    for position, item in enumerate(value):
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict):
            errors.add("sso.acs_urls", f"Entry {position + 1}: give an object with a url.")
            continue
        try:
            url = validate_app_url(str(item.get("url", "")), what="ACS URL")
        except ValueError as exc:
            errors.add("sso.acs_urls", f"Entry {position + 1}: {exc}")
            continue
        binding = item.get("binding") or BINDING_POST
        if binding != BINDING_POST:
            errors.add(
                "sso.acs_urls", f"Entry {position + 1}: only the HTTP-POST binding ({BINDING_POST}) is supported."
            )
            continue
        index = item.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 65535:
            errors.add("sso.acs_urls", f"Entry {position + 1}: index must be a whole number from 0 to 65535.")
            continue
        if index in seen_indexes:
            errors.add("sso.acs_urls", f"Entry {position + 1}: index {index} is used twice.")
            continue
        seen_indexes.add(index)
        cleaned.append({"url": url, "binding": binding, "index": index})
    return cleaned


def _clean_url_list(value: Any, field: str, errors: SettingErrors, *, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_RELAY_STATE_URLS:
        errors.add(field, f"Give a list of at most {MAX_RELAY_STATE_URLS} URLs.")
        return []
    cleaned = []
    for item in value:
        try:
            cleaned.append(validate_app_url(str(item), what=what))
        except ValueError as exc:
            errors.add(field, str(exc))
    return cleaned


def apply_sso(sso: SsoSettings, changes: dict, errors: SettingErrors) -> None:
    for field, value in changes.items():
        key = f"sso.{field}"
        if field not in SSO_FIELDS:
            errors.add(key, "Unknown or read-only field.")
        elif field == "acs_urls":
            sso.acs_urls = _clean_acs_urls(value, errors)
        elif field == "relay_state_urls":
            sso.relay_state_urls = _clean_url_list(value, key, errors, what="RelayState URL")
        elif field in ("sp_login_url", "slo_url", "slo_soap_url", "sp_metadata_url"):
            sso_value = str(value or "").strip()
            if sso_value:
                try:
                    sso_value = validate_app_url(
                        sso_value, what=field.replace("_", " "), allow_http=field == "sp_metadata_url"
                    )
                    if field == "sp_metadata_url":
                        check_outbound_url(sso_value)
                except (ValueError, OutboundURLError) as exc:
                    errors.add(key, str(exc))
            setattr(sso, field, sso_value)
        elif field in ("sp_signing_cert", "sp_encryption_cert"):
            try:
                setattr(sso, field, normalize_certificate_pem(str(value or "")))
            except CertificateError as exc:
                errors.add(key, str(exc))
        elif field in (
            "sign_response",
            "sign_assertion",
            "allow_sha1",
            "require_signed_requests",
            "encrypt_assertions",
            "encrypt_name_id",
        ):
            if not isinstance(value, bool):
                errors.add(key, "Must be true or false.")
            else:
                setattr(sso, field, value)
        elif field in ("assertion_lifetime_seconds", "session_lifetime_seconds"):
            upper = 3600 if field == "assertion_lifetime_seconds" else 30 * 24 * 3600
            if isinstance(value, bool) or not isinstance(value, int) or not 30 <= value <= upper:
                errors.add(key, f"A number of seconds from 30 to {upper}.")
            else:
                setattr(sso, field, value)
        else:
            choices = {
                "nameid_format": NameIdFormat.values,
                "nameid_property": NameIdProperty.values,
                "signature_algorithm": SignatureAlgorithm.values,
                "encryption_algorithm": EncryptionAlgorithm.values,
                "key_transport": KeyTransport.values,
                "digest_algorithm": DigestAlgorithm.values,
            }.get(field)
            text = str(value if value is not None else "").strip()
            if choices is not None and text not in choices:
                errors.add(key, f"Choose one of {', '.join(choices)}.")
                continue
            limit = SsoSettings._meta.get_field(field).max_length
            if limit and len(text) > limit:
                errors.add(key, f"At most {limit} characters.")
                continue
            setattr(sso, field, text)

    _check_encryption_and_digest(sso, changes, errors)
    if not sso.sign_response and not sso.sign_assertion:
        errors.add("sso.sign_assertion", "Sign the response, the assertion or both.")
    if sso.signature_algorithm == SignatureAlgorithm.RSA_SHA1 and not sso.allow_sha1:
        errors.add(
            "sso.signature_algorithm",
            "RSA-SHA1 is insecure and refused; set allow_sha1 to true only if the app accepts nothing else.",
        )
    if sso.require_signed_requests and not sso.sp_signing_cert:
        errors.add(
            "sso.sp_signing_cert", "Signed AuthnRequests are required, so the SP's signing certificate is needed."
        )
    if sso.default_relay_state and len(sso.default_relay_state) > 1024:
        errors.add("sso.default_relay_state", "At most 1024 characters.")


def _check_encryption_and_digest(sso: SsoSettings, changes: dict, errors: SettingErrors) -> None:
    # A new certificate without a word on encryption switches it on, clearing it switches it off.
    if "sp_encryption_cert" in changes and "encrypt_assertions" not in changes:
        sso.encrypt_assertions = bool(sso.sp_encryption_cert)
    if (sso.encrypt_assertions or sso.encrypt_name_id) and not sso.sp_encryption_cert:
        errors.add("sso.sp_encryption_cert", "Encryption is on, so the SP's encryption certificate is needed.")
    if sso.digest_algorithm == DigestAlgorithm.SHA1 and not sso.allow_sha1:
        errors.add("sso.digest_algorithm", "SHA-1 digests are insecure and refused unless allow_sha1 is set.")


def apply_provisioning(provisioning: ProvisioningSettings, changes: dict, errors: SettingErrors) -> bool:
    """Apply changes; returns whether the token changed (its value never leaves this function)."""
    token_changed = False
    url_before = provisioning.base_url.rstrip("/")
    for field, value in changes.items():
        key = f"provisioning.{field}"
        if field not in PROVISIONING_FIELDS:
            errors.add(key, "Unknown or read-only field.")
        elif field in ("enabled", "deprovision_unmanaged"):
            if not isinstance(value, bool):
                errors.add(key, "Must be true or false.")
            else:
                setattr(provisioning, field, value)
        elif field in ("deprovision_threshold_count", "deprovision_threshold_percent"):
            upper = 100 if field.endswith("percent") else 1_000_000
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
                errors.add(key, f"A whole number from 0 to {upper}.")
            else:
                setattr(provisioning, field, value)
        elif field == "base_url":
            url = str(value or "").strip().rstrip("/")
            if url:
                try:
                    # The bearer token travels with every request: https unless the app is on loopback.
                    check_outbound_url(url)
                    validate_app_url(url, what="SCIM base URL")
                except (ValueError, OutboundURLError) as exc:
                    errors.add(key, str(exc))
                if len(url) > 2000:
                    errors.add(key, "At most 2000 characters.")
            provisioning.base_url = url
        elif field == "token":
            if value is None:
                continue
            token = str(value).strip()
            if len(token) > 4096 or any(ord(char) < 0x21 for char in token):
                errors.add(key, "The token must be at most 4096 printable characters without spaces.")
                continue
            provisioning.token_ciphertext = encrypt_secret(token) if token else ""
            provisioning.token_updated_at = timezone.now()
            token_changed = True
        elif field == "operations":
            if not isinstance(value, list) or any(op not in ProvisioningOperation.values for op in value):
                errors.add(key, f"A list of: {', '.join(ProvisioningOperation.values)}.")
            else:
                provisioning.operations = [op for op in ProvisioningOperation.values if op in value]
        elif field == "deprovision":
            if value not in Deprovision.values:
                errors.add(key, f"Choose one of {', '.join(Deprovision.values)}.")
            else:
                provisioning.deprovision = value
        elif field == "update_method":
            if value not in UpdateMethod.values:
                errors.add(key, f"Choose one of {', '.join(UpdateMethod.values)}.")
            else:
                provisioning.update_method = value
        elif field == "rate_limit_per_second":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
                errors.add(key, "A whole number of requests per second from 0 (no limit) to 10000.")
            else:
                provisioning.rate_limit_per_second = value
        elif field == "group_members_per_request":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GROUP_MEMBERS_PER_REQUEST:
                errors.add(key, f"A whole number of members per request from 1 to {MAX_GROUP_MEMBERS_PER_REQUEST}.")
            else:
                provisioning.group_members_per_request = value
    if url_before and provisioning.base_url != url_before and provisioning.token_ciphertext and not token_changed:
        # The token was given for the old address: it must not follow the URL to a new one unasked.
        errors.add(
            "provisioning.token",
            "The SCIM base URL changed: enter the app's token again (a stored token is only ever sent to the "
            "URL it was saved with).",
        )
    if provisioning.enabled and not provisioning.base_url:
        errors.add("provisioning.base_url", "Identity Management is enabled, so the SCIM base URL is needed.")
    if provisioning.enabled and not provisioning.token_ciphertext:
        errors.add("provisioning.token", "Identity Management is enabled, so the app's bearer token is needed.")
    return token_changed


def apply_connector_fields(connector: Connector, changes: dict, errors: SettingErrors) -> None:
    for field, value in changes.items():
        if field == "enabled":
            if not isinstance(value, bool):
                errors.add(field, "Must be true or false.")
            else:
                connector.enabled = value
            continue
        text = str(value if value is not None else "").strip()
        if field == "bookmark_url" and text:
            try:
                text = validate_app_url(text, what="bookmark URL", allow_http=True)
            except ValueError as exc:
                errors.add(field, str(exc))
                continue
        if field == "logo" and text and not text.startswith(("connectors/", "https://")):
            errors.add(field, "A logo is a catalog logo (connectors/...) or an https URL.")
            continue
        setattr(connector, field, text)
    if not connector.name:
        errors.add("name", "This field is required.")
    for field in ("name", "description", "logo"):
        limit = Connector._meta.get_field(field).max_length
        if limit and len(getattr(connector, field)) > limit:
            errors.add(field, f"At most {limit} characters.")
    if connector.kind == ConnectorKind.BOOKMARK and not connector.bookmark_url:
        errors.add("bookmark_url", "A bookmark needs the app's sign-in URL.")


# Path segments the console uses beside connector slugs (/console/connectors/catalog/, /new/...).
RESERVED_SLUGS = frozenset({"catalog", "new"})


def _slug_taken(slug: str) -> bool:
    return slug in RESERVED_SLUGS or Connector.objects.filter(slug=slug).exists()


def unique_slug(requested: str | None, name: str, errors: SettingErrors) -> str:
    if requested:
        slug = slugify(requested)
        if slug != requested or not slug:
            errors.add("slug", "Use lowercase letters, digits and hyphens only.")
        elif len(slug) > 64:
            errors.add("slug", "At most 64 characters.")
        elif slug in RESERVED_SLUGS:
            errors.add("slug", f"{slug!r} is reserved; choose another slug.")
        elif Connector.objects.filter(slug=slug).exists():
            errors.add("slug", "A connector with this slug already exists.")
        return slug
    base = (slugify(name) or "app")[:56]
    slug, counter = base, 2
    while _slug_taken(slug):
        slug, counter = f"{base}-{counter}", counter + 1
    return slug
