"""The claims an OIDC app gets about a person: pure functions of the user's properties, the
connector's claim mappings, its subject source and the scopes granted. No database, no request.

Standard claims come with their OpenID Connect scope (Core 5.4): `email` and `email_verified` with
`email`; names and `preferred_username` with `profile`; `groups` with `groups`. Any other claim an
admin maps comes with `profile`. Empty values are left out, as relying parties expect.
"""

from collections.abc import Iterable
from typing import Any

from apps.connectors.attributes import render_source
from apps.connectors.models import OidcSubject
from apps.connectors.properties import text_values

CLAIM_SCOPES: dict[str, str] = {
    "email": "email",
    "email_verified": "email",
    "name": "profile",
    "given_name": "profile",
    "family_name": "profile",
    "middle_name": "profile",
    "nickname": "profile",
    "preferred_username": "profile",
    "profile": "profile",
    "picture": "profile",
    "website": "profile",
    "zoneinfo": "profile",
    "locale": "profile",
    "updated_at": "profile",
    "phone_number": "phone",
    "address": "address",
    "groups": "groups",
}
CUSTOM_CLAIM_SCOPE = "profile"


def scope_of(claim: str) -> str:
    return CLAIM_SCOPES.get(claim, CUSTOM_CLAIM_SCOPE)


def claim_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """A user's directory properties (apps.saml_idp.attributes.user_properties) plus what only a
    claim can say: the company email is verified when there is one (the directory owns it)."""
    return {**properties, "email_verified": bool(properties.get("email"))}


def subject(properties: dict[str, Any], sub_source: str) -> str:
    """The `sub` claim: the directory id unless the connector says email or username."""
    if sub_source == OidcSubject.EMAIL and properties.get("email"):
        return str(properties["email"])
    if sub_source == OidcSubject.USERNAME:
        return str(properties["username"])
    return str(properties["id"])


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


_OIDC_ADDRESS_KEYS = {"formatted": "formatted", "streetAddress": "street_address", "locality": "locality",
                      "region": "region", "postalCode": "postal_code", "country": "country"}  # fmt: skip


def _address_claim(value: Any) -> dict | None:
    """The `address` claim is a JSON object (OpenID Connect Core 5.1.1): from the addresses (the
    primary one, else the first), one address's SCIM entry, or a text (its `formatted`)."""
    if isinstance(value, list):
        entries = [entry for entry in value if isinstance(entry, dict)]
        value = next((entry for entry in entries if entry.get("primary")), entries[0] if entries else None)
    if isinstance(value, dict):
        return {ours: value[scim] for scim, ours in _OIDC_ADDRESS_KEYS.items() if value.get(scim)} or None
    return {"formatted": str(value)} if value not in (None, "") else None


def mapped_claims(properties: dict[str, Any], mappings: Iterable[tuple[str, str]], scopes: Iterable[str]) -> dict:
    """Claims from the connector's (source, claim) rows that the granted `scopes` reveal."""
    granted = set(scopes)
    values = claim_properties(properties)
    claims: dict[str, Any] = {}
    for source, claim in mappings:
        if scope_of(claim) not in granted:
            continue
        value = render_source(source, values)
        value = _address_claim(value) if claim == "address" else text_values(value)
        if isinstance(value, tuple):
            value = list(value)
        if not _empty(value):
            claims[claim] = value
    return claims


def user_claims(
    properties: dict[str, Any], mappings: Iterable[tuple[str, str]], scopes: Iterable[str], sub_source: str
) -> dict:
    """`sub` and the mapped claims: what the userinfo endpoint answers and the ID token carries."""
    return {"sub": subject(properties, sub_source), **mapped_claims(properties, mappings, scopes)}
