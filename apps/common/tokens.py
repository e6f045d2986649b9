"""Bearer secrets: generated with enough entropy that a plain SHA-256 is a safe way to store them."""

import hashlib
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class IssuedSecret:
    secret: str
    prefix: str
    secret_hash: str


def issue_secret(kind: str) -> IssuedSecret:
    """A new secret such as `idp_api_<43 chars>`; only its hash and prefix are meant to be stored."""
    secret = f"idp_{kind}_{secrets.token_urlsafe(32)}"
    return IssuedSecret(secret=secret, prefix=secret[: len(kind) + 9], secret_hash=hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
