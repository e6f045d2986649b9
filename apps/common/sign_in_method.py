"""How a portal session was signed in: the portal records it in the session under this key, and
the identity providers read it (the OIDC `amr` and `acr` claims) without importing the portal.

The value is the first factor, then each second factor passed, joined by `+`: `password`,
`password+totp`, `password+recovery`, `password+passkey`, `saml:<upstream>+totp`.
"""

SIGN_IN_METHOD_SESSION_KEY = "portal_sign_in_method"

SECOND_FACTORS = frozenset({"totp", "recovery", "passkey"})
# RFC 8176 authentication method references.
_AMR = {"password": "pwd", "totp": "otp", "recovery": "otp", "passkey": "hwk"}


def sign_in_factors(method: str) -> list[str]:
    return [part for part in (method or "").split("+") if part]


def has_second_factor(method: str) -> bool:
    return any(factor in SECOND_FACTORS for factor in sign_in_factors(method))


def authentication_method_references(method: str) -> list[str]:
    """RFC 8176 values for the factors of `method`, with `mfa` when two were passed. A delegated
    sign-in upstream has no reference of its own here (the upstream IdP's are not known)."""
    references: list[str] = []
    for factor in sign_in_factors(method):
        reference = _AMR.get(factor)
        if reference and reference not in references:
            references.append(reference)
    if has_second_factor(method) and len(sign_in_factors(method)) > 1:
        references.append("mfa")
    return references
