"""Which XML encryption and signature algorithms to use with an SP: names, URIs and negotiation.

Pure functions of what an SP's metadata lists (`md:EncryptionMethod` in its encryption
KeyDescriptor, `alg:SigningMethod` / `alg:DigestMethod` from the SAML v2.0 Metadata Profile for
Algorithm Support) and of the connector's policy. No Django, no I/O.

When the SP lists nothing, the default is what every SP we test against decrypts:
AES-256-CBC for the data and RSA-OAEP (MGF1 with SHA-1) for the key. AES-GCM would be stronger (CBC
has no integrity of its own, so a careless SP that reports padding errors distinctly can leak
plaintext to an attacker who replays altered ciphertext), but lasso 2.8.1 under mod_auth_mellon
0.18 (Debian 12, the SP Red Hat and many self-hosted apps ship) cannot decrypt AES-GCM at all and
reports only "assertion not found". The assertion inside stays signed, which is what the SP trusts;
SPs that can read GCM say so in their metadata and get it.
"""

from dataclasses import dataclass

XMLENC = "http://www.w3.org/2001/04/xmlenc#"
XMLENC11 = "http://www.w3.org/2009/xmlenc11#"
XMLDSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"

# Data (block) encryption, strongest first.
DATA_ALGORITHMS: dict[str, str] = {
    "aes256-gcm": XMLENC11 + "aes256-gcm",
    "aes128-gcm": XMLENC11 + "aes128-gcm",
    "aes256-cbc": XMLENC + "aes256-cbc",
    "aes128-cbc": XMLENC + "aes128-cbc",
}
DATA_ALGORITHM_LABELS = {
    "aes256-gcm": "AES-256-GCM",
    "aes128-gcm": "AES-128-GCM",
    "aes256-cbc": "AES-256-CBC",
    "aes128-cbc": "AES-128-CBC",
}
# Key transport, strongest first. "rsa-oaep-sha256" is XML Encryption 1.1's RSA-OAEP with a SHA-256
# digest (its mask generation stays MGF1 with SHA-1, the default every implementation reads).
KEY_TRANSPORTS: dict[str, str] = {
    "rsa-oaep-sha256": XMLENC11 + "rsa-oaep",
    "rsa-oaep-mgf1p": XMLENC + "rsa-oaep-mgf1p",
}
KEY_TRANSPORT_LABELS = {
    "rsa-oaep-sha256": "RSA-OAEP, SHA-256",
    "rsa-oaep-mgf1p": "RSA-OAEP, MGF1-SHA1",
}
SHA256_DIGEST = XMLENC + "sha256"

DEFAULT_DATA_ALGORITHM = "aes256-cbc"
DEFAULT_KEY_TRANSPORT = "rsa-oaep-mgf1p"

# Signatures, strongest first; SHA-1 only for a connector with its explicit opt-in.
SIGNATURE_ALGORITHMS: dict[str, str] = {
    "rsa-sha512": XMLDSIG_MORE + "rsa-sha512",
    "rsa-sha384": XMLDSIG_MORE + "rsa-sha384",
    "rsa-sha256": XMLDSIG_MORE + "rsa-sha256",
    "rsa-sha1": XMLDSIG + "rsa-sha1",
}
DIGEST_ALGORITHMS: dict[str, str] = {
    "sha512": XMLENC + "sha512",
    "sha384": XMLDSIG_MORE + "sha384",
    "sha256": XMLENC + "sha256",
    "sha1": XMLDSIG + "sha1",
}
DEFAULT_SIGNATURE_ALGORITHM = "rsa-sha256"


def digest_for_signature(signature_algorithm: str) -> str:
    """The digest that goes with a signature algorithm when none is chosen apart (rsa-sha256 -> sha256)."""
    return signature_algorithm.removeprefix("rsa-")


@dataclass(frozen=True)
class AdvertisedEncryption:
    """One md:EncryptionMethod: its Algorithm and, for RSA-OAEP, its ds:DigestMethod (if any)."""

    algorithm: str
    digest: str = ""


def _key_transport_of(method: AdvertisedEncryption) -> str | None:
    if method.algorithm == KEY_TRANSPORTS["rsa-oaep-mgf1p"]:
        return "rsa-oaep-sha256" if method.digest == SHA256_DIGEST else "rsa-oaep-mgf1p"
    if method.algorithm == KEY_TRANSPORTS["rsa-oaep-sha256"]:
        # XML Encryption 1.1's RSA-OAEP without a DigestMethod means SHA-1: only SHA-256 is offered here.
        return "rsa-oaep-sha256" if method.digest == SHA256_DIGEST else None
    return None


def negotiate_encryption(methods: list[AdvertisedEncryption]) -> tuple[str, str, list[str]]:
    """(data algorithm, key transport, notes): the strongest of each that the SP lists and we support,
    or the default for what it does not list."""
    notes: list[str] = []
    listed_data = {uri for method in methods for uri in [method.algorithm]}
    data = next((name for name, uri in DATA_ALGORITHMS.items() if uri in listed_data), None)
    transports = {name for method in methods if (name := _key_transport_of(method))}
    transport = next((name for name in KEY_TRANSPORTS if name in transports), None)
    if not methods:
        notes.append(
            f"The SP's metadata lists no encryption methods: {DATA_ALGORITHM_LABELS[DEFAULT_DATA_ALGORITHM]} with "
            f"{KEY_TRANSPORT_LABELS[DEFAULT_KEY_TRANSPORT]}, which every tested SP decrypts."
        )
    else:
        if data is None:
            notes.append(
                "The SP lists no data encryption algorithm the portal supports; using "
                f"{DATA_ALGORITHM_LABELS[DEFAULT_DATA_ALGORITHM]}."
            )
        if transport is None:
            notes.append(
                "The SP lists no key transport the portal supports; using "
                f"{KEY_TRANSPORT_LABELS[DEFAULT_KEY_TRANSPORT]}."
            )
    return data or DEFAULT_DATA_ALGORITHM, transport or DEFAULT_KEY_TRANSPORT, notes


def negotiate_signature(
    signing_methods: list[str], digest_methods: list[str], *, allow_sha1: bool = False
) -> tuple[str, str, list[str]]:
    """(signature algorithm, digest algorithm, notes) from the SP's alg:SigningMethod / alg:DigestMethod."""
    notes: list[str] = []
    allowed_signatures = [name for name in SIGNATURE_ALGORITHMS if allow_sha1 or name != "rsa-sha1"]
    signature = next((n for n in allowed_signatures if SIGNATURE_ALGORITHMS[n] in signing_methods), None)
    if signing_methods and signature is None:
        notes.append(
            "The SP lists no signature algorithm the portal may use (SHA-1 needs the connector's explicit "
            "opt-in); signing with RSA-SHA256."
        )
    signature = signature or DEFAULT_SIGNATURE_ALGORITHM
    allowed_digests = [name for name in DIGEST_ALGORITHMS if allow_sha1 or name != "sha1"]
    digest = next((n for n in allowed_digests if DIGEST_ALGORITHMS[n] in digest_methods), None)
    if digest_methods and digest is None:
        notes.append("The SP lists no digest algorithm the portal may use; digesting with SHA-256.")
    if digest is None:
        digest = digest_for_signature(signature)
    return signature, digest, notes


def describe(*, encrypt: bool, data_algorithm: str, key_transport: str, encrypt_name_id: bool = False) -> str:
    """`AES-256-CBC, key RSA-OAEP, MGF1-SHA1` or `not encrypted`, for people."""
    if not encrypt:
        return "not encrypted"
    data = DATA_ALGORITHM_LABELS.get(data_algorithm, data_algorithm)
    text = f"{data}, key {KEY_TRANSPORT_LABELS.get(key_transport, key_transport)}"
    return text + (" (NameID encrypted too)" if encrypt_name_id else "")
