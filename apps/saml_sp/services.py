"""Upstream IdPs: their configuration and metadata, and who a SAML assertion from one of them is."""

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.common.http import OutboundURLError, fetch_limited
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.directory import services as directory_services
from apps.directory.models import User
from apps.directory.selectors import user_get_by_email, user_get_by_username
from apps.saml_sp.groups import sync_upstream_groups
from apps.saml_sp.models import GroupSync, MatchAttribute, UpstreamIdentityProvider

_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
_DS = "http://www.w3.org/2000/09/xmldsig#"
UPSTREAM_FIELDS = (
    "name",
    "slug",
    "metadata_url",
    "metadata_xml",
    "match_attribute",
    "match_saml_attribute",
    "jit_create",
    "attribute_mapping",
    "enforced",
    "enabled",
    "accept_idp_initiated",
    "single_logout",
    "groups_attribute",
    "groups_sync",
)
# Directory fields that a just-in-time user may take from SAML attributes.
MAPPABLE_FIELDS = ("username", "email", "first_name", "last_name", "display_name", "employee_id")


class UpstreamRefused(ApplicationError):
    """An assertion that names nobody we may sign in. `reason` goes to the audit trail only."""

    def __init__(
        self, reason: str, message: str = "Your organisation's sign-in did not match an active account here."
    ) -> None:
        super().__init__(message, code=reason)
        self.reason = reason


# --- Metadata -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_bindings: tuple[str, ...]
    has_signing_key: bool


def parse_idp_metadata(xml: str) -> IdpMetadata:
    """Check that `xml` describes exactly one SAML 2.0 IdP with an SSO endpoint and a signing key."""
    try:
        root = parse_untrusted_xml(xml.encode(), max_bytes=settings.SAML_SP_MAX_METADATA_BYTES)
    except UnsafeXMLError as exc:
        raise ValidationError({"metadata_xml": [f"The metadata is not usable XML: {exc}"]}) from exc
    if root.tag != f"{{{_MD}}}EntityDescriptor":
        raise ValidationError({"metadata_xml": ["The metadata must be one md:EntityDescriptor (not an aggregate)."]})
    entity_id = (root.get("entityID") or "").strip()
    descriptor = root.find(f"{{{_MD}}}IDPSSODescriptor")
    if not entity_id or descriptor is None:
        raise ValidationError({"metadata_xml": ["The metadata does not describe a SAML identity provider."]})
    bindings = tuple(element.get("Binding", "") for element in descriptor.findall(f"{{{_MD}}}SingleSignOnService"))
    if not bindings:
        raise ValidationError({"metadata_xml": ["The IdP metadata has no SingleSignOnService."]})
    signing = [
        key
        for key in descriptor.findall(f"{{{_MD}}}KeyDescriptor")
        if key.get("use") in (None, "signing") and key.find(f".//{{{_DS}}}X509Certificate") is not None
    ]
    if not signing:
        raise ValidationError({"metadata_xml": ["The IdP metadata has no signing certificate."]})
    return IdpMetadata(entity_id=entity_id, sso_bindings=bindings, has_signing_key=True)


def fetch_metadata(url: str) -> str:
    try:
        body = fetch_limited(
            url, max_bytes=settings.SAML_SP_MAX_METADATA_BYTES, accept="application/samlmetadata+xml, application/xml"
        )
    except (OutboundURLError, OSError) as exc:
        raise ValidationError({"metadata_url": [f"The metadata could not be fetched: {exc}"]}) from exc
    return body.decode("utf-8", errors="replace")


def _snapshot(upstream: UpstreamIdentityProvider) -> dict[str, Any]:
    return {
        "name": upstream.name,
        "slug": upstream.slug,
        "entity_id": upstream.entity_id,
        "metadata_url": upstream.metadata_url,
        "match_attribute": upstream.match_attribute,
        "match_saml_attribute": upstream.match_saml_attribute,
        "jit_create": upstream.jit_create,
        "attribute_mapping": upstream.attribute_mapping,
        "enforced": upstream.enforced,
        "enabled": upstream.enabled,
        "accept_idp_initiated": upstream.accept_idp_initiated,
        "single_logout": upstream.single_logout,
        "groups_attribute": upstream.groups_attribute,
        "groups_sync": upstream.groups_sync,
    }


def _validate(upstream: UpstreamIdentityProvider) -> None:
    errors: dict[str, list[str]] = {}
    if not upstream.name.strip():
        errors["name"] = ["A name is required."]
    if not isinstance(upstream.attribute_mapping, dict) or any(
        field not in MAPPABLE_FIELDS or not isinstance(attribute, str) or not attribute
        for field, attribute in (upstream.attribute_mapping or {}).items()
    ):
        errors["attribute_mapping"] = [f"Map directory fields ({', '.join(MAPPABLE_FIELDS)}) to SAML attribute names."]
    if upstream.match_attribute not in MatchAttribute.values:
        errors["match_attribute"] = ["Match on email, username or employee_id."]
    if upstream.groups_sync not in GroupSync.values:
        errors["groups_sync"] = [f"Choose one of: {', '.join(GroupSync.values)}."]
    if not isinstance(upstream.groups_attribute, str) or len(upstream.groups_attribute.strip()) > 255:
        errors["groups_attribute"] = ["Give the SAML attribute name (at most 255 characters), or leave it empty."]
    else:
        upstream.groups_attribute = upstream.groups_attribute.strip()
    for flag in ("accept_idp_initiated", "single_logout", "jit_create", "enforced", "enabled"):
        if not isinstance(getattr(upstream, flag), bool):
            errors[flag] = ["Give true or false."]
    if not upstream.metadata_xml and not upstream.metadata_url:
        errors["metadata_xml"] = ["Give the IdP's metadata, as XML or as a URL."]
    if errors:
        raise ValidationError(errors)


def _load_metadata(upstream: UpstreamIdentityProvider, *, fetch: bool) -> None:
    if fetch and upstream.metadata_url:
        upstream.metadata_xml = fetch_metadata(upstream.metadata_url)
        upstream.metadata_fetched_at = timezone.now()
    upstream.entity_id = parse_idp_metadata(upstream.metadata_xml).entity_id


def upstream_create(*, actor: Actor, name: str, slug: str = "", **fields: Any) -> UpstreamIdentityProvider:
    unknown = set(fields) - set(UPSTREAM_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}.", code="unknown_field")
    upstream = UpstreamIdentityProvider(name=name.strip(), slug=slugify(slug or name)[:64], **fields)
    if UpstreamIdentityProvider.objects.filter(slug=upstream.slug).exists():
        raise ValidationError({"slug": ["An upstream IdP with this slug exists."]})
    _validate(upstream)
    # Fetched before the transaction opens: a slow IdP must not hold the database's write lock
    # (SQLite takes it at BEGIN) for the length of an HTTP request.
    _load_metadata(upstream, fetch=not upstream.metadata_xml)
    try:
        with transaction.atomic():
            upstream.save()
            audit_record(actor=actor, action="saml_sp.upstream.create", target=upstream, after=_snapshot(upstream))
    except IntegrityError as exc:  # the same slug saved meanwhile
        raise ValidationError({"slug": ["An upstream IdP with this slug exists."]}) from exc
    return upstream


def upstream_update(*, actor: Actor, upstream: UpstreamIdentityProvider, **changes: Any) -> UpstreamIdentityProvider:
    unknown = set(changes) - set(UPSTREAM_FIELDS) - {"refresh"}
    if unknown or "slug" in changes:
        raise ApplicationError(
            "The slug is part of the URLs the IdP knows; create a new one instead.", code="not_editable"
        )
    refresh = changes.pop("refresh", False)
    before = _snapshot(upstream)
    for name, value in changes.items():
        setattr(upstream, name, value)
    _validate(upstream)
    # Outside the transaction, as in upstream_create.
    _load_metadata(upstream, fetch=refresh or ("metadata_url" in changes and "metadata_xml" not in changes))
    after = _snapshot(upstream)
    changed = {key for key in after if after[key] != before[key]} | ({"metadata"} if refresh else set())
    with transaction.atomic():
        upstream.save()
        audit_record(
            actor=actor,
            action="saml_sp.upstream.update",
            target=upstream,
            before={key: before.get(key) for key in changed},
            after={key: after.get(key) for key in changed},
        )
    return upstream


@transaction.atomic
def upstream_delete(*, actor: Actor, upstream: UpstreamIdentityProvider) -> None:
    """Remove an upstream IdP: its sign-in button and SP URLs go; accounts it created stay."""
    audit_record(actor=actor, action="saml_sp.upstream.delete", target=upstream, before=_snapshot(upstream))
    upstream.delete()


def upstream_refresh_metadata(*, actor: Actor, upstream: UpstreamIdentityProvider) -> UpstreamIdentityProvider:
    if not upstream.metadata_url:
        raise ValidationError({"metadata_url": ["This IdP's metadata was given as XML; there is nothing to fetch."]})
    return upstream_update(actor=actor, upstream=upstream, refresh=True)


# --- Who an assertion names -----------------------------------------------------------------


def _first(values: Any) -> str:
    if isinstance(values, list | tuple):
        values = values[0] if values else ""
    return str(values or "").strip()


def assertion_identifier(upstream: UpstreamIdentityProvider, session_info: dict[str, Any]) -> str:
    """The value that identifies the person: the configured attribute's first value, or the NameID."""
    if upstream.match_saml_attribute:
        return _first(session_info.get("ava", {}).get(upstream.match_saml_attribute))
    name_id = session_info.get("name_id")
    return str(getattr(name_id, "text", name_id) or "").strip()


def _find_user(upstream: UpstreamIdentityProvider, value: str) -> User | None:
    if upstream.match_attribute == MatchAttribute.EMAIL:
        return user_get_by_email(value)
    if upstream.match_attribute == MatchAttribute.USERNAME:
        return user_get_by_username(value)
    matches = list(User.objects.filter(employee_id=value)[:2])
    if len(matches) > 1:
        raise UpstreamRefused("ambiguous_match")
    return matches[0] if matches else None


_USERNAME_CHARS = re.compile(r"[^\w.@+-]")


def _jit_username(candidate: str) -> str:
    base = _USERNAME_CHARS.sub("", candidate)[:140] or "user"
    username, counter = base, 1
    while user_get_by_username(username) is not None:
        counter += 1
        username = f"{base[:135]}-{counter}"
    return username


def _jit_create(upstream: UpstreamIdentityProvider, value: str, attributes: dict[str, Any]) -> User:
    mapped = {field: _first(attributes.get(attribute)) for field, attribute in upstream.attribute_mapping.items()}
    mapped = {field: text for field, text in mapped.items() if text}
    mapped.setdefault(upstream.match_attribute, value)
    username = mapped.pop("username", "") or (mapped.get("email", "").split("@")[0] if mapped.get("email") else value)
    try:
        return directory_services.user_create(actor=None, username=_jit_username(username), password=None, **mapped)
    except ValidationError as exc:
        raise UpstreamRefused("jit_invalid", "Your account could not be created here; ask your administrator.") from exc


def match_user(upstream: UpstreamIdentityProvider, session_info: dict[str, Any]) -> tuple[User, bool]:
    """The directory user an assertion from `upstream` signs in (created when allowed).

    Returns (user, created); raises UpstreamRefused (unknown, suspended, ambiguous, wrong issuer).
    """
    if session_info.get("issuer") != upstream.entity_id:
        raise UpstreamRefused("wrong_issuer")
    value = assertion_identifier(upstream, session_info)
    if not value:
        raise UpstreamRefused("no_identifier")
    user = _find_user(upstream, value)
    created = False
    if user is None:
        if not upstream.jit_create:
            raise UpstreamRefused("unknown_user")
        with transaction.atomic():
            user = _jit_create(upstream, value, session_info.get("ava", {}))
            audit_record(
                actor=None,
                actor_label=f"saml_sp:{upstream.slug}",
                action="saml_sp.jit_create",
                target=user,
                after={"upstream": upstream.slug, "matched_on": upstream.match_attribute},
            )
        created = True
    if not user.is_active:
        raise UpstreamRefused("inactive", "This account is suspended, so it cannot sign in. Ask your administrator.")
    sync_upstream_groups(upstream, user, session_info.get("ava", {}))
    return user, created
