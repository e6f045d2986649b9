"""Encryption of secrets at rest (downstream tokens, private keys) with keys from the environment."""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def _fernet_from_setting(value: str) -> Fernet:
    return Fernet(value.encode())


def _fernet_derived_from_secret_key(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"idp-portal secrets at rest\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@cache
def _cipher(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    # The first key encrypts; all of them decrypt, so keys can be rotated without downtime.
    fernets = [_fernet_from_setting(key) for key in keys] or [_fernet_derived_from_secret_key(secret_key)]
    return MultiFernet(fernets)


def _current_cipher() -> MultiFernet:
    return _cipher(tuple(settings.SECRETS_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt_secret(plaintext: str) -> str:
    return _current_cipher().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return _current_cipher().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("stored secret cannot be decrypted with the configured keys") from exc


def generate_key() -> str:
    return Fernet.generate_key().decode()
