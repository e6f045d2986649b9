"""Signing keys: generated here, private halves encrypted at rest, rotated through a `next` key.

The portal has one active key and at most one next key; the next key is published in metadata so
that apps can trust it before it signs anything, and rotation makes it the active one. A connector
may have its own key instead (an override). Services write and audit; selectors read.
"""

import datetime
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.crypto import decrypt_secret, encrypt_secret
from apps.common.errors import ApplicationError
from apps.common.pki import certificate_base64, certificate_info
from apps.connectors.models import Connector, ConnectorKind
from apps.saml_idp.models import ConnectorSigningKey, KeyScope, KeyStatus, SigningKey
from apps.saml_idp.signing import load_private_key, load_rsa_private_key

MIN_KEY_SIZE = 2048
MAX_KEY_SIZE = 4096


@dataclass(frozen=True)
class GeneratedKey:
    private_key_pem: str
    certificate_pem: str
    not_after: datetime.datetime


def generate_key_pair(*, key_size: int, validity_days: int, common_name: str) -> GeneratedKey:
    """An RSA key and a self-signed certificate for it (SAML trusts the certificate as a key holder)."""
    if not MIN_KEY_SIZE <= key_size <= MAX_KEY_SIZE or key_size % 1024:
        raise ApplicationError(f"The key size must be {MIN_KEY_SIZE}, 3072 or {MAX_KEY_SIZE} bits.", code="key_size")
    if not 1 <= validity_days <= 36500:
        raise ApplicationError("The validity must be from 1 to 36500 days.", code="validity")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    # Back-dated a little so that an SP whose clock runs behind still finds it valid.
    not_before = timezone.now() - datetime.timedelta(minutes=5)
    not_after = not_before + datetime.timedelta(days=validity_days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    return GeneratedKey(
        private_key_pem=private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        not_after=certificate.not_valid_after_utc,
    )


def _common_name(connector: Connector | None = None) -> str:
    host = urlsplit(settings.PORTAL_BASE_URL).hostname or "idp-portal"
    return f"{host} SAML signing" if connector is None else f"{host} SAML signing for {connector.slug}"


def _new_key(*, scope: str, status: str, key_size: int | None, validity_days: int | None, connector=None) -> SigningKey:
    generated = generate_key_pair(
        key_size=key_size or settings.SAML_IDP_KEY_SIZE,
        validity_days=validity_days or settings.SAML_IDP_KEY_VALIDITY_DAYS,
        common_name=_common_name(connector),
    )
    return SigningKey.objects.create(
        scope=scope,
        status=status,
        private_key_ciphertext=encrypt_secret(generated.private_key_pem),
        certificate_pem=generated.certificate_pem,
        fingerprint_sha256=certificate_info(generated.certificate_pem).sha256_fingerprint,
        key_size=key_size or settings.SAML_IDP_KEY_SIZE,
        not_after=generated.not_after,
        activated=timezone.now() if status == KeyStatus.ACTIVE else None,
    )


def key_snapshot(key: SigningKey) -> dict:
    return {
        "id": str(key.pk),
        "scope": key.scope,
        "status": key.status,
        "fingerprint_sha256": key.fingerprint_sha256,
        "key_size": key.key_size,
        "not_after": key.not_after.isoformat(),
    }


# --- Services -----------------------------------------------------------------------------------


def ensure_active_key() -> SigningKey:
    """The portal's active key, generated on first use (two workers racing agree on one)."""
    key = SigningKey.objects.filter(scope=KeyScope.PORTAL, status=KeyStatus.ACTIVE).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            key = _new_key(scope=KeyScope.PORTAL, status=KeyStatus.ACTIVE, key_size=None, validity_days=None)
            audit_record(actor=None, action="saml.key.create", target=key, after=key_snapshot(key))
            return key
    except IntegrityError:
        return SigningKey.objects.get(scope=KeyScope.PORTAL, status=KeyStatus.ACTIVE)


@transaction.atomic
def signing_key_create_next(
    *, actor: Actor, key_size: int | None = None, validity_days: int | None = None
) -> SigningKey:
    """Generate the next key, to be published in metadata until `signing_key_rotate` activates it."""
    ensure_active_key()
    if SigningKey.objects.select_for_update().filter(scope=KeyScope.PORTAL, status=KeyStatus.NEXT).exists():
        raise ApplicationError(
            "A next key already exists; rotate to it or wait until apps have picked it up.", code="next_key_exists"
        )
    key = _new_key(scope=KeyScope.PORTAL, status=KeyStatus.NEXT, key_size=key_size, validity_days=validity_days)
    audit_record(actor=actor, action="saml.key.create", target=key, after=key_snapshot(key))
    return key


@transaction.atomic
def signing_key_rotate(*, actor: Actor) -> SigningKey:
    """Make the next key the active one and retire the old; without a next key, generate one first.

    Apps that trust only the old certificate stop accepting responses at once: check
    `next_key_pickup` before rotating.
    """
    ensure_active_key()
    keys = {
        key.status: key
        for key in SigningKey.objects.select_for_update().filter(
            scope=KeyScope.PORTAL, status__in=[KeyStatus.ACTIVE, KeyStatus.NEXT]
        )
    }
    old, new = keys[KeyStatus.ACTIVE], keys.get(KeyStatus.NEXT)
    now = timezone.now()
    old.status, old.retired = KeyStatus.RETIRED, now
    old.save(update_fields=["status", "retired"])
    if new is None:
        new = _new_key(scope=KeyScope.PORTAL, status=KeyStatus.ACTIVE, key_size=None, validity_days=None)
    else:
        new.status, new.activated = KeyStatus.ACTIVE, now
        new.save(update_fields=["status", "activated"])
    audit_record(
        actor=actor,
        action="saml.key.rotate",
        target=new,
        before={"active": key_snapshot(old)},
        after={"active": key_snapshot(new), "retired": str(old.pk)},
    )
    return new


@transaction.atomic
def connector_signing_key_set(*, actor: Actor, connector: Connector, key_size: int | None = None) -> SigningKey:
    """Give the connector its own newly generated key (replacing an earlier override)."""
    existing = ConnectorSigningKey.objects.select_for_update().filter(connector=connector).first()
    key = _new_key(
        scope=KeyScope.CONNECTOR, status=KeyStatus.ACTIVE, key_size=key_size, validity_days=None, connector=connector
    )
    before = None
    if existing is not None:
        before = key_snapshot(existing.key)
        _retire(existing.key)
        existing.key = key
        existing.save(update_fields=["key"])
    else:
        ConnectorSigningKey.objects.create(connector=connector, key=key)
    audit_record(
        actor=actor,
        action="saml.key.connector_override",
        target=connector,
        before={"key": before} if before else None,
        after={"key": key_snapshot(key)},
    )
    return key


@transaction.atomic
def connector_signing_key_clear(*, actor: Actor, connector: Connector) -> None:
    """Go back to the portal's keys."""
    existing = ConnectorSigningKey.objects.select_for_update().filter(connector=connector).first()
    if existing is None:
        return
    key = existing.key
    existing.delete()
    _retire(key)
    audit_record(
        actor=actor, action="saml.key.connector_override_clear", target=connector, before={"key": key_snapshot(key)}
    )


def _retire(key: SigningKey) -> None:
    key.status, key.retired = KeyStatus.RETIRED, timezone.now()
    key.save(update_fields=["status", "retired"])


# --- Selectors ----------------------------------------------------------------------------------


def signing_key_list(*, include_connector_keys: bool = False) -> QuerySet[SigningKey]:
    keys = SigningKey.objects.all()
    if not include_connector_keys:
        keys = keys.filter(scope=KeyScope.PORTAL)
    return keys.order_by("-created")


def connector_override_key(connector: Connector) -> SigningKey | None:
    link = ConnectorSigningKey.objects.select_related("key").filter(connector=connector).first()
    return link.key if link else None


def current_signing_key(connector: Connector) -> SigningKey | None:
    """The connector's own key, else the portal's active one, in one query; None before the portal
    has made its first key (this never makes one).

    The private key column is deferred: `loaded_key` reads it only when this process has not
    loaded that key yet.
    """
    override = ConnectorSigningKey.objects.filter(connector_id=connector.pk).values("key_id")
    candidates = list(
        SigningKey.objects.filter(
            Q(scope=KeyScope.PORTAL, status=KeyStatus.ACTIVE) | Q(scope=KeyScope.CONNECTOR, pk__in=override)
        ).defer("private_key_ciphertext")
    )
    by_scope = {key.scope: key for key in candidates}
    return by_scope.get(KeyScope.CONNECTOR) or by_scope.get(KeyScope.PORTAL)


def signing_key_for(connector: Connector) -> SigningKey:
    """The key that signs this connector's responses right now (one query on the SSO path)."""
    return current_signing_key(connector) or ensure_active_key()


def published_keys(connector: Connector) -> list[SigningKey]:
    """What the connector's metadata lists: its own key, or the portal's active and next keys."""
    override = connector_override_key(connector)
    if override is not None:
        return [override]
    ensure_active_key()
    keys = SigningKey.objects.filter(scope=KeyScope.PORTAL, status__in=[KeyStatus.ACTIVE, KeyStatus.NEXT])
    return sorted(keys, key=lambda key: key.status != KeyStatus.ACTIVE)


def portal_next_key() -> SigningKey | None:
    return SigningKey.objects.filter(scope=KeyScope.PORTAL, status=KeyStatus.NEXT).first()


def connector_key_overrides() -> QuerySet[ConnectorSigningKey]:
    """Connectors that sign with their own key, with that key (deferred private half)."""
    return (
        ConnectorSigningKey.objects.select_related("connector", "key")
        .defer("key__private_key_ciphertext")
        .order_by("connector__name")
    )


def metadata_pickup(next_key: SigningKey | None) -> QuerySet[Connector]:
    """SAML and OIDC connectors that sign with the portal's keys, each with `last_fetch` (its latest
    metadata or JWKS download) and `fetched_since_next` (the latest one since `next_key` was
    published), in one query.

    Metadata and JWKS list the next key from its creation on, so an app that fetched since then
    trusts it.
    """
    kinds = [ConnectorKind.SAML, ConnectorKind.SAML_SCIM, ConnectorKind.OIDC, ConnectorKind.OIDC_SCIM]
    connectors = (
        Connector.objects.filter(kind__in=kinds)
        .exclude(pk__in=ConnectorSigningKey.objects.values("connector_id"))
        .annotate(last_fetch=Max("saml_metadata_fetches__created"))
        .order_by("name")
    )
    if next_key is not None:
        connectors = connectors.annotate(
            fetched_since_next=Max(
                "saml_metadata_fetches__created",
                filter=Q(saml_metadata_fetches__created__gte=next_key.created),
            )
        )
    return connectors


# --- Keys loaded for signing --------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedKey:
    id: UUID
    # libxmlsec1's handle (raw Redirect signatures, pysaml2's backend) and cryptography's
    # (`signing.sign_element`) of the same private key.
    key: xmlsec.Key
    private_key: rsa.RSAPrivateKey
    certificate_pem: str
    certificate_b64: str

    @classmethod
    def from_pem(cls, key_id: UUID, private_key_pem: str, certificate_pem: str) -> "LoadedKey":
        return cls(
            id=key_id,
            key=load_private_key(private_key_pem),
            private_key=load_rsa_private_key(private_key_pem),
            certificate_pem=certificate_pem,
            certificate_b64=certificate_base64(certificate_pem),
        )


# Key material never changes for a given id, so this cache cannot go stale; which key is used is
# read from the database on every request. Decrypting and parsing a key costs more than a signature.
_loaded: dict[UUID, LoadedKey] = {}
_loaded_lock = threading.Lock()


def loaded_key(signing_key: SigningKey) -> LoadedKey:
    cached = _loaded.get(signing_key.pk)
    if cached is not None:
        return cached
    loaded = LoadedKey.from_pem(
        signing_key.pk, decrypt_secret(signing_key.private_key_ciphertext), signing_key.certificate_pem
    )
    with _loaded_lock:
        if len(_loaded) > 256:
            _loaded.clear()
        _loaded[signing_key.pk] = loaded
    return loaded


_NOT_READ = object()


def loaded_key_for(connector: Connector) -> LoadedKey:
    """The loaded key that signs for `connector` now: one cheap read when this process has it.

    A connector from `selectors.sso_connector` carries that read already (`signing_key_id`, read
    in the same query as the connector in this request), so it costs no query at all.
    """
    key_id = getattr(connector, "signing_key_id", _NOT_READ)
    if key_id is _NOT_READ:
        key_id = signing_key_choice(connector.pk)
    if key_id is not None and key_id in _loaded:
        return _loaded[key_id]
    return loaded_key(SigningKey.objects.get(pk=key_id) if key_id is not None else ensure_active_key())


def private_key_pem(signing_key: SigningKey) -> str:
    """The decrypted private key (the pysaml2 baseline in the benchmark needs it as a file)."""
    return decrypt_secret(signing_key.private_key_ciphertext)


# --- Which key signs for a connector (read in the same query as the connector by selectors) ------

# Its own (an override), else the portal's active key.
CHOSEN_KEY_SQL = (
    "COALESCE((SELECT o.key_id FROM saml_idp_connectorsigningkey o WHERE o.connector_id = c.id), "
    "(SELECT p.id FROM saml_idp_signingkey p WHERE p.scope = 'portal' AND p.status = 'active'))"
)


def uuid_param(value: uuid.UUID) -> object:
    # SQLite stores UUIDs as 32 hex characters, PostgreSQL as uuid: let the field say which.
    return SigningKey._meta.pk.get_db_prep_value(value, connection)


def as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def signing_key_choice(connector_id: uuid.UUID) -> uuid.UUID | None:
    """Id of the key that signs for the connector: its own, else the portal's active key."""
    with connection.cursor() as cursor:
        # Only the fixed text above goes into the statement; the id is bound.
        chosen_key_sql = f"SELECT {CHOSEN_KEY_SQL} FROM connectors_connector c WHERE c.id = %s"  # noqa: S608
        cursor.execute(chosen_key_sql, [uuid_param(connector_id)])
        row = cursor.fetchone()
    return as_uuid(row[0]) if row and row[0] is not None else None
