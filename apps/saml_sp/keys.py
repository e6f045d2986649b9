"""Delegated login's key pair: upstream IdPs encrypt assertions to its certificate, and it signs the
portal's logout messages to them.

One active key and at most one next key, as for the IdP's signing keys (apps.saml_idp.keys): the
next key is published in the SP metadata beside the active one so that IdPs can take it before it
is used; rotation makes it the active one. A retired key still decrypts for
SAML_SP_RETIRED_KEY_GRACE_SECONDS, since an IdP encrypts to the certificate it fetched last.
Private halves are generated here and stored encrypted (SECRETS_ENCRYPTION_KEYS).

pysaml2 decrypts through the `xmlsec1` program, which reads the private key from a file: each
process writes the keys it needs into a folder of its own (in memory under /dev/shm where the
system has it, readable by this user only) and removes it when it exits.
"""

import atexit
import datetime
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.crypto import decrypt_secret, encrypt_secret
from apps.common.errors import ApplicationError
from apps.common.pki import certificate_info
from apps.saml_idp.keys import LoadedKey, generate_key_pair
from apps.saml_sp.models import SpKey, SpKeyStatus


def _common_name() -> str:
    host = urlsplit(settings.PORTAL_BASE_URL).hostname or "idp-portal"
    return f"{host} delegated login"


def _new_key(*, status: str, key_size: int | None = None) -> SpKey:
    size = key_size or settings.SAML_IDP_KEY_SIZE
    generated = generate_key_pair(
        key_size=size, validity_days=settings.SAML_IDP_KEY_VALIDITY_DAYS, common_name=_common_name()
    )
    return SpKey.objects.create(
        status=status,
        private_key_ciphertext=encrypt_secret(generated.private_key_pem),
        certificate_pem=generated.certificate_pem,
        fingerprint_sha256=certificate_info(generated.certificate_pem).sha256_fingerprint,
        key_size=size,
        not_after=generated.not_after,
        activated=timezone.now() if status == SpKeyStatus.ACTIVE else None,
    )


def key_snapshot(key: SpKey) -> dict:
    return {
        "id": str(key.pk),
        "status": key.status,
        "fingerprint_sha256": key.fingerprint_sha256,
        "key_size": key.key_size,
        "not_after": key.not_after.isoformat(),
    }


# --- Services -----------------------------------------------------------------------------------


def ensure_active_sp_key() -> SpKey:
    """The active key, generated on first use (two workers racing agree on one)."""
    key = SpKey.objects.filter(status=SpKeyStatus.ACTIVE).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            key = _new_key(status=SpKeyStatus.ACTIVE)
            audit_record(actor=None, action="saml_sp.key.create", target=key, after=key_snapshot(key))
            return key
    except IntegrityError:
        return SpKey.objects.get(status=SpKeyStatus.ACTIVE)


@transaction.atomic
def sp_key_create_next(*, actor: Actor, key_size: int | None = None) -> SpKey:
    """Generate the next key: published in the SP metadata (so IdPs may encrypt to it) until
    `sp_key_rotate` makes it the active one."""
    ensure_active_sp_key()
    if SpKey.objects.select_for_update().filter(status=SpKeyStatus.NEXT).exists():
        raise ApplicationError(
            "A next key already exists: rotate to it once the IdPs have fetched the SP metadata again.",
            code="next_key_exists",
        )
    key = _new_key(status=SpKeyStatus.NEXT, key_size=key_size)
    audit_record(actor=actor, action="saml_sp.key.create", target=key, after=key_snapshot(key))
    return key


@transaction.atomic
def sp_key_rotate(*, actor: Actor) -> SpKey:
    """The next key becomes the active one (a new one is generated when there is none) and the old
    one is retired; it still decrypts for SAML_SP_RETIRED_KEY_GRACE_SECONDS."""
    ensure_active_sp_key()
    keys = {
        key.status: key
        for key in SpKey.objects.select_for_update().filter(status__in=[SpKeyStatus.ACTIVE, SpKeyStatus.NEXT])
    }
    old, new = keys[SpKeyStatus.ACTIVE], keys.get(SpKeyStatus.NEXT)
    now = timezone.now()
    old.status, old.retired = SpKeyStatus.RETIRED, now
    old.save(update_fields=["status", "retired"])
    if new is None:
        new = _new_key(status=SpKeyStatus.ACTIVE)
    else:
        new.status, new.activated = SpKeyStatus.ACTIVE, now
        new.save(update_fields=["status", "activated"])
    audit_record(
        actor=actor,
        action="saml_sp.key.rotate",
        target=new,
        before={"active": key_snapshot(old)},
        after={"active": key_snapshot(new), "retired": str(old.pk)},
    )
    return new


# --- Selectors ----------------------------------------------------------------------------------


def sp_key_list() -> QuerySet[SpKey]:
    return SpKey.objects.defer("private_key_ciphertext").order_by("-created")


def published_sp_keys() -> list[SpKey]:
    """What the SP metadata lists: the active key, then the next one."""
    ensure_active_sp_key()
    keys = SpKey.objects.filter(status__in=[SpKeyStatus.ACTIVE, SpKeyStatus.NEXT])
    return sorted(keys, key=lambda key: key.status != SpKeyStatus.ACTIVE)


def decryption_sp_keys() -> list[SpKey]:
    """Keys that may decrypt an assertion now: active, next, and those retired within the grace."""
    ensure_active_sp_key()
    grace = timezone.now() - datetime.timedelta(seconds=settings.SAML_SP_RETIRED_KEY_GRACE_SECONDS)
    keys = SpKey.objects.filter(
        Q(status__in=[SpKeyStatus.ACTIVE, SpKeyStatus.NEXT]) | Q(status=SpKeyStatus.RETIRED, retired__gte=grace)
    )
    order = {SpKeyStatus.ACTIVE: 0, SpKeyStatus.NEXT: 1, SpKeyStatus.RETIRED: 2}
    return sorted(keys, key=lambda key: order[key.status])


# --- Keys for pysaml2 and for signing -------------------------------------------------------------

_files_dir: Path | None = None
_files_lock = threading.Lock()
_loaded: dict[UUID, LoadedKey] = {}


def _files() -> Path:
    global _files_dir
    with _files_lock:
        if _files_dir is None:
            memory = Path("/dev/shm")  # noqa: S108 - a private folder is made inside it
            parent = memory if memory.is_dir() and os.access(memory, os.W_OK) else None
            _files_dir = Path(tempfile.mkdtemp(prefix="idp-portal-sp-keys-", dir=parent))
            os.chmod(_files_dir, 0o700)
            atexit.register(shutil.rmtree, _files_dir, ignore_errors=True)
        return _files_dir


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


@dataclass(frozen=True)
class KeyFiles:
    key_file: str
    cert_file: str


def certificate_file(key: SpKey) -> str:
    path = _files() / f"{key.pk}.crt"
    if not path.exists():
        path.write_text(key.certificate_pem)
    return str(path)


def key_files(key: SpKey) -> KeyFiles:
    """The key pair as the files pysaml2's `encryption_keypairs` names (written once per process;
    a key's material never changes for its id)."""
    key_path = _files() / f"{key.pk}.key"
    if not key_path.exists():
        partial = key_path.with_suffix(f".{threading.get_ident()}.tmp")
        _write_private(partial, decrypt_secret(key.private_key_ciphertext))
        partial.replace(key_path)
    return KeyFiles(key_file=str(key_path), cert_file=certificate_file(key))


def loaded_sp_key(key: SpKey) -> LoadedKey:
    """The key in memory, to sign logout messages in-process (apps.saml_idp.signing)."""
    cached = _loaded.get(key.pk)
    if cached is None:
        cached = LoadedKey.from_pem(key.pk, decrypt_secret(key.private_key_ciphertext), key.certificate_pem)
        _loaded[key.pk] = cached
    return cached
