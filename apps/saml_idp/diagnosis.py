"""Which algorithms a connector's assertions use, and what an SP's error report points at.

When an app says it could not read the assertion, the cause is almost always encryption: an
algorithm its library cannot decrypt (XML Encryption 1.1's RSA-OAEP in xmlsec1 1.2, AES-GCM in
old SPs), or a certificate that is not its current key. Admins paste the app's error message into
the tracer page; `diagnose_sp_report` recognises the usual texts and points at the settings to
check. Pure functions of the settings and the text.
"""

import re
from dataclasses import dataclass

from apps.connectors.models import SsoSettings
from apps.connectors.saml_algorithms import (
    DATA_ALGORITHM_LABELS,
    DATA_ALGORITHMS,
    DEFAULT_DATA_ALGORITHM,
    DEFAULT_KEY_TRANSPORT,
    KEY_TRANSPORT_LABELS,
    KEY_TRANSPORTS,
    describe,
    digest_for_signature,
)

_UNREADABLE = re.compile(
    r"decrypt|encrypt|EncryptedAssertion|EncryptedData|EncryptedKey|"
    r"\[-427\]|did not found it|assertion (?:was )?not found|no assertion|could not find (?:the |an )?assertion|"
    r"Unable to build a LassoNode|cipher|padding|OAEP|unsupported (?:key )?(?:transport|algorithm)",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"signature|digest|reference|sha-?1|sha-?256|certificate|fingerprint", re.IGNORECASE)


@dataclass(frozen=True)
class AlgorithmsInUse:
    encryption: str
    signature: str
    digest: str
    negotiated: bool  # encryption algorithms chosen from what the SP's metadata lists
    advertised: list[str]

    @property
    def text(self) -> str:
        return f"assertion {self.encryption}; signature {self.signature}, digest {self.digest}"


def algorithms_in_use(sso: SsoSettings) -> AlgorithmsInUse:
    advertised = [method[0] for method in (sso.sp_algorithms or {}).get("encryption", [])]
    negotiated = any(
        uri in (DATA_ALGORITHMS[sso.encryption_algorithm], KEY_TRANSPORTS[sso.key_transport]) for uri in advertised
    )
    return AlgorithmsInUse(
        encryption=describe(
            encrypt=sso.encrypt_assertions and bool(sso.sp_encryption_cert),
            data_algorithm=sso.encryption_algorithm,
            key_transport=sso.key_transport,
            encrypt_name_id=sso.encrypt_name_id,
        ),
        signature=sso.signature_algorithm.upper(),
        digest=(sso.digest_algorithm or digest_for_signature(sso.signature_algorithm)).upper(),
        negotiated=negotiated,
        advertised=advertised,
    )


def _problem(level: str, title: str, detail: str = "") -> dict:
    return {"level": level, "title": title, "detail": detail}


def diagnose_sp_report(sso: SsoSettings, report: str) -> list[dict]:
    """What to check when the app's error message is `report` (what the app or its log said)."""
    problems: list[dict] = []
    encrypted = sso.encrypt_assertions and bool(sso.sp_encryption_cert)
    if _UNREADABLE.search(report):
        if not encrypted and not sso.encrypt_name_id:
            problems.append(
                _problem(
                    "warn",
                    "The app could not read the assertion, but the portal does not encrypt it",
                    "Check that the app does not insist on encrypted assertions (then switch encryption on) and "
                    "that it trusts the portal's current signing certificate.",
                )
            )
        else:
            in_use = algorithms_in_use(sso)
            problems.append(
                _problem(
                    "bad",
                    "The app could not read the encrypted assertion: check the encryption settings",
                    f"The portal encrypts with {in_use.encryption}"
                    + (
                        " (from the algorithms the app's metadata lists)."
                        if in_use.negotiated
                        else " (the default: the app's metadata lists no encryption methods)."
                    ),
                )
            )
            if sso.key_transport != DEFAULT_KEY_TRANSPORT:
                problems.append(
                    _problem(
                        "warn",
                        f"Try the key transport {KEY_TRANSPORT_LABELS[DEFAULT_KEY_TRANSPORT]}",
                        "XML Encryption 1.1's RSA-OAEP is not read by xmlsec1 1.2, lasso (mod_auth_mellon) or pysaml2.",
                    )
                )
            if sso.encryption_algorithm != DEFAULT_DATA_ALGORITHM:
                problems.append(
                    _problem(
                        "warn",
                        f"Try {DATA_ALGORITHM_LABELS[DEFAULT_DATA_ALGORITHM]}",
                        "Older SAML libraries cannot decrypt AES-GCM.",
                    )
                )
            problems.append(
                _problem(
                    "info",
                    "Check the app's encryption certificate",
                    "It must be the certificate of the key the app decrypts with now: import the app's metadata "
                    "again, or give its metadata URL so that the portal keeps it fresh. Switching encryption off "
                    "for one test sign-in tells whether encryption is the cause.",
                )
            )
    if _SIGNATURE.search(report) and not _UNREADABLE.search(report):
        problems.append(
            _problem(
                "warn",
                "The app refused the signature: check the signing settings",
                f"The portal signs with {sso.signature_algorithm.upper()}; the app must trust the certificate "
                "in the connector's IdP metadata (fetch it again after a key rotation).",
            )
        )
    if not problems:
        problems.append(
            _problem(
                "info",
                "Nothing in this message points at encryption or signing",
                "Capture a sign-in with the tracer to see what the app sent and what the portal answered.",
            )
        )
    return problems
