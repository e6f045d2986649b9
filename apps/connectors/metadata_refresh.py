"""SP metadata into a connector's SSO settings: imported once, or kept fresh from the SP's URL.

An import fills everything the metadata says (entity ID, ACS and SLO endpoints, certificates,
NameID format) and negotiates the algorithms (`apps.connectors.saml_algorithms`): encryption switches on
when the SP publishes an encryption certificate, with the strongest algorithms it lists, or the
default every tested SP reads. The admin sees the choice on the SSO tab and may change it.

A refresh (Celery beat, `connectors.refresh_sp_metadata`) fetches the URL again through the SSRF
guard and applies only what an SP rotates on its own: certificates and endpoints. Each change is
audited as its own row; the fetch time and any error are kept on the connector for the SSO tab.
The admin's algorithm choices are never overwritten by a refresh.
"""

import datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.common.http import OutboundURLError, fetch_limited
from apps.connectors.metadata import MAX_METADATA_BYTES, MetadataError, SpMetadata, parse_sp_metadata
from apps.connectors.models import Connector, NameIdFormat, NameIdProperty, SsoSettings
from apps.connectors.saml_algorithms import AdvertisedEncryption, negotiate_encryption, negotiate_signature
from apps.connectors.services import connector_update
from apps.connectors.validation import validate_app_url

# What a refresh may change: what an SP rotates or moves without asking the IdP's admin.
REFRESHED_FIELDS = ("sp_signing_cert", "sp_encryption_cert", "acs_urls", "slo_url", "slo_binding", "slo_soap_url")
_ACCEPT = "application/samlmetadata+xml, application/xml"


def fetch_sp_metadata(url: str) -> bytes:
    """The metadata document at `url`, through the SSRF guard; ValidationError names what went wrong."""
    try:
        validate_app_url(url, what="metadata URL", allow_http=True)
        return fetch_limited(url, max_bytes=MAX_METADATA_BYTES, accept=_ACCEPT)
    except (ValueError, OutboundURLError) as exc:
        raise ValidationError({"url": [ValidationError(str(exc))]}) from exc
    except httpx.HTTPError as exc:
        raise ValidationError(
            {"url": [ValidationError(f"The metadata could not be fetched: {type(exc).__name__}.")]}
        ) from exc


def _parse(xml: bytes | str) -> SpMetadata:
    try:
        return parse_sp_metadata(xml)
    except MetadataError as exc:
        raise ValidationError({"xml": [ValidationError(str(exc))]}) from exc


def endpoint_and_certificate_changes(metadata: SpMetadata) -> dict[str, Any]:
    changes: dict[str, Any] = {"acs_urls": metadata.acs_urls, "slo_soap_url": metadata.slo_soap_url}
    if metadata.slo_url:
        changes["slo_url"] = metadata.slo_url
        changes["slo_binding"] = metadata.slo_binding
    else:
        changes["slo_url"] = changes["slo_binding"] = ""
    if metadata.signing_cert:
        changes["sp_signing_cert"] = metadata.signing_cert
    if metadata.encryption_cert:
        changes["sp_encryption_cert"] = metadata.encryption_cert
    return changes


def import_changes(metadata: SpMetadata, sso: SsoSettings) -> tuple[dict[str, Any], list[str]]:
    """Every SSO setting a metadata import sets, and the negotiation's notes for the admin."""
    changes = {"sp_entity_id": metadata.entity_id, **endpoint_and_certificate_changes(metadata)}
    if not metadata.slo_url:
        # An import without SLO endpoints keeps what the admin typed (as it always did).
        changes.pop("slo_url")
        changes.pop("slo_binding")
    if metadata.nameid_format:
        changes["nameid_format"] = metadata.nameid_format
        if metadata.nameid_format == NameIdFormat.PERSISTENT:
            changes["nameid_property"] = NameIdProperty.ID
    if metadata.authn_requests_signed and metadata.signing_cert:
        changes["require_signed_requests"] = True
    data_algorithm, key_transport, encryption_notes = negotiate_encryption(
        [AdvertisedEncryption(*method) for method in metadata.encryption_methods]
    )
    changes["encrypt_assertions"] = bool(metadata.encryption_cert)
    if not metadata.encryption_cert:
        changes["encrypt_name_id"] = False
        encryption_notes = []
    changes["encryption_algorithm"], changes["key_transport"] = data_algorithm, key_transport
    signature_notes: list[str] = []
    if metadata.signing_methods or metadata.digest_methods:
        changes["signature_algorithm"], changes["digest_algorithm"], signature_notes = negotiate_signature(
            metadata.signing_methods, metadata.digest_methods, allow_sha1=sso.allow_sha1
        )
    return changes, encryption_notes + signature_notes


def _as_metadata_error(exc: ValidationError) -> ValidationError:
    # The metadata's own values broke a rule (an http ACS on a public host, say): say so.
    return ValidationError(
        {"xml": [ValidationError(f"{field}: {'; '.join(messages)}") for field, messages in exc.message_dict.items()]}
    )


@transaction.atomic
def connector_import_sp_metadata(
    *, actor: Actor, connector: Connector, xml: bytes | str | None = None, url: str | None = None
) -> Connector:
    """Fill the SSO settings from the SP's metadata, given as XML or fetched from `url` (which is then
    kept, and fetched again on schedule)."""
    if not connector.has_sso:
        raise ApplicationError(f"A {connector.get_kind_display()} has no SSO settings.", code="no_sso")
    if (xml is None) == (url is None):
        raise ValidationError({"xml": [ValidationError("Give the metadata XML or its URL, not both.")]})
    if url is not None:
        xml = fetch_sp_metadata(url)
    metadata = _parse(xml)
    changes, notes = import_changes(metadata, connector.sso)
    changes["sp_metadata_url"] = url or ""
    try:
        connector = connector_update(actor=actor, connector=connector, sso=changes)
    except ValidationError as exc:
        raise _as_metadata_error(exc) from exc
    fetched = {"sp_metadata_fetched_at": timezone.now() if url else None, "sp_metadata_fetch_error": ""}
    SsoSettings.objects.filter(pk=connector.pk).update(sp_algorithms=metadata.advertised_algorithms(), **fetched)
    for name, value in {"sp_algorithms": metadata.advertised_algorithms(), **fetched}.items():
        setattr(connector.sso, name, value)
    audit_record(
        actor=actor,
        action="connector.sp_metadata_import",
        target=connector,
        after={"sp_entity_id": metadata.entity_id, "source": url or "upload", **({"notes": notes} if notes else {})},
    )
    return connector


def _record_fetch(connector: Connector, error: str) -> None:
    now = timezone.now()
    SsoSettings.objects.filter(pk=connector.pk).update(sp_metadata_fetched_at=now, sp_metadata_fetch_error=error)
    connector.sso.sp_metadata_fetched_at, connector.sso.sp_metadata_fetch_error = now, error


def _error_text(exc: ValidationError) -> str:
    return "; ".join(message for messages in exc.message_dict.values() for message in messages)[:2000]


def sp_metadata_refresh(*, connector: Connector, actor: Actor = None) -> list[str]:
    """Fetch the connector's SP metadata URL again and apply certificate and endpoint changes.

    Returns the names of the settings that changed. A failure (unreachable, refused by the SSRF
    guard, not metadata, another entity, a rule broken) changes nothing and is kept on the
    connector as its last fetch error; it is audited once when it starts, not at every attempt.
    """
    sso = connector.sso
    url = sso.sp_metadata_url
    if not url:
        raise ApplicationError(f"{connector.name} has no SP metadata URL to refresh from.", code="no_metadata_url")
    try:
        metadata = _parse(fetch_sp_metadata(url))
        if metadata.entity_id != sso.sp_entity_id:
            raise ValidationError(
                {
                    "xml": [
                        ValidationError(
                            f"The metadata now describes {metadata.entity_id}, not {sso.sp_entity_id}: "
                            "import it by hand if the app really changed its entity ID."
                        )
                    ]
                }
            )
        wanted = endpoint_and_certificate_changes(metadata)
        changes = {name: value for name, value in wanted.items() if getattr(sso, name) != value}
        with transaction.atomic():
            if changes:
                connector = connector_update(actor=actor, connector=connector, sso=changes)
                for name in changes:
                    audit_record(
                        actor=actor,
                        action="connector.sp_metadata_change",
                        target=connector,
                        before={name: getattr(sso, name)},
                        after={"setting": name, name: getattr(connector.sso, name), "source": url},
                    )
            SsoSettings.objects.filter(pk=connector.pk).update(sp_algorithms=metadata.advertised_algorithms())
            _record_fetch(connector, "")
    except ValidationError as exc:
        error = _error_text(exc)
        with transaction.atomic():
            if error != sso.sp_metadata_fetch_error:
                audit_record(
                    actor=actor,
                    action="connector.sp_metadata_refresh_failed",
                    target=connector,
                    after={"source": url, "error": error},
                )
            _record_fetch(connector, error)
        return []
    return sorted(changes)


def connectors_due_for_refresh(*, now: datetime.datetime | None = None) -> list[Connector]:
    """SSO connectors with a metadata URL not fetched within SP_METADATA_REFRESH_SECONDS."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.SP_METADATA_REFRESH_SECONDS)
    return list(
        Connector.objects.select_related("sso")
        .exclude(sso__sp_metadata_url="")
        .filter(Q(sso__sp_metadata_fetched_at__isnull=True) | Q(sso__sp_metadata_fetched_at__lt=cutoff))
        .filter(sso__isnull=False)
        .order_by("sso__sp_metadata_fetched_at")[: settings.SP_METADATA_REFRESH_BATCH]
    )


def refresh_due_sp_metadata() -> dict[str, list[str]]:
    """Refresh every connector whose metadata is due; {slug: changed settings}."""
    return {connector.slug: sp_metadata_refresh(connector=connector) for connector in connectors_due_for_refresh()}
