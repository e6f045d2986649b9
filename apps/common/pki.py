"""X.509 certificate helpers for certificates pasted by admins or found in metadata."""

import base64
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

_PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


class CertificateError(ValueError):
    pass


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    not_before: datetime
    not_after: datetime
    sha256_fingerprint: str


def normalize_certificate_pem(text: str) -> str:
    """A certificate as PEM, from PEM or bare base64 DER (as in SAML metadata); raises CertificateError."""
    text = (text or "").strip()
    if not text:
        return ""
    match = _PEM_BODY.search(text)
    body = match.group(1) if match else text
    body = re.sub(r"\s+", "", body)
    try:
        der = base64.b64decode(body, validate=True)
        certificate = x509.load_der_x509_certificate(der)
    except (ValueError, TypeError) as exc:
        raise CertificateError("This is not an X.509 certificate (PEM or base64).") from exc
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def certificate_info(pem: str) -> CertificateInfo:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        sha256_fingerprint=fingerprint,
    )


def certificate_base64(pem: str) -> str:
    """The base64 DER body of a PEM certificate, as SAML metadata carries it."""
    return "".join(_PEM_BODY.search(pem).group(1).split())
