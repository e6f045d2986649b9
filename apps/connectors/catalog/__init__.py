"""The connector catalog: one JSON file per template in this folder; adding one needs no code."""

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from apps.connectors.attributes import MappingError, validate_mapping
from apps.connectors.models import ConnectorKind, MappingKind

CATALOG_DIR = Path(__file__).resolve().parent

# The seed's attribute table (the integration guide the product was specified from).
SEED_SCIM_USER_MAPPINGS: tuple[tuple[str, str], ...] = (
    ("username", "userName"),
    ("email", 'emails[type eq "work"].value'),
    ("status", "active"),
    ("first_name", "name.givenName"),
    ("last_name", "name.familyName"),
    ("display_name", "name.formatted"),
    ("display_name", "displayName"),
    ("employee_id", "externalId"),
)
SEED_SCIM_GROUP_MAPPINGS: tuple[tuple[str, str], ...] = (
    ("name", "displayName"),
    ("members", "members"),
)
_SEED = {MappingKind.SCIM_USER: SEED_SCIM_USER_MAPPINGS, MappingKind.SCIM_GROUP: SEED_SCIM_GROUP_MAPPINGS}


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class MappingRow:
    kind: str
    source: str
    target: str
    name_format: str = ""


@dataclass(frozen=True)
class Template:
    slug: str
    name: str
    kind: str
    description: str
    logo: str
    setup_notes: str = ""
    # The user attribute the app ties a SAML sign-in to a provisioned account by: "userName" (or
    # externalId), or "email" for apps that match both on the email address.
    account_match: str = "userName"
    sso: dict = field(default_factory=dict)
    provisioning: dict = field(default_factory=dict)
    # OpenID Connect defaults; `redirect_uri_pattern` is the redirect URI the vendor documents,
    # with {host} where the admin's own host name goes.
    oidc: dict = field(default_factory=dict)
    mappings: tuple[MappingRow, ...] = ()
    # What the app's own SAML values look like, shown beside the SSO fields: {"entity_id": ...,
    # "acs_url": ...}, with the parts each customer has in <angle brackets>.
    sp_hints: dict[str, str] = field(default_factory=dict)


def _mapping_rows(slug: str, spec: dict) -> tuple[MappingRow, ...]:
    rows: list[MappingRow] = []
    for kind, value in spec.items():
        if kind not in MappingKind.values:
            raise CatalogError(f"{slug}: unknown mapping kind {kind!r}")
        if value == "seed":
            if kind not in _SEED:
                raise CatalogError(f"{slug}: there are no seed mappings for {kind}")
            rows.extend(MappingRow(kind, source, target) for source, target in _SEED[kind])
            continue
        for item in value:
            rows.append(MappingRow(kind, item["source"], item["target"], item.get("name_format", "")))
    for row in rows:
        try:
            validate_mapping(row.kind, row.source, row.target, row.name_format)
        except MappingError as exc:
            raise CatalogError(f"{slug}: mapping {row.source} -> {row.target}: {exc.message}") from exc
    return tuple(rows)


def _load(path: Path) -> Template:
    try:
        return _parse(path, json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise CatalogError(f"{path.name}: missing or malformed field {exc}") from exc


ACCOUNT_MATCHES = ("userName", "email")


def _account_match(slug: str, value: str) -> str:
    if value not in ACCOUNT_MATCHES:
        raise CatalogError(f"{slug}: account_match must be one of {', '.join(ACCOUNT_MATCHES)}")
    return value


SP_HINT_FIELDS = ("entity_id", "acs_url")


def _sp_hints(slug: str, kind: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise CatalogError(f"{slug}: sp_hints must be an object")
    if value and kind not in (ConnectorKind.SAML, ConnectorKind.SAML_SCIM):
        raise CatalogError(f"{slug}: sp_hints are for apps with SAML sign-in")
    unknown = set(value) - set(SP_HINT_FIELDS)
    if unknown:
        raise CatalogError(f"{slug}: unknown sp_hints {', '.join(sorted(unknown))}; known: {', '.join(SP_HINT_FIELDS)}")
    for name, hint in value.items():
        if not isinstance(hint, str) or not hint.strip():
            raise CatalogError(f"{slug}: sp_hints.{name} must be a non-empty string")
    return dict(value)


def _parse(path: Path, data: dict) -> Template:
    slug = data["slug"]
    if slug != path.stem:
        raise CatalogError(f"{path.name}: slug {slug!r} must match the file name")
    if data["kind"] not in ConnectorKind.values:
        raise CatalogError(f"{slug}: unknown kind {data['kind']!r}")
    return Template(
        slug=slug,
        name=data["name"],
        kind=data["kind"],
        description=data.get("description", ""),
        logo=data.get("logo", ""),
        setup_notes=data.get("setup_notes", ""),
        account_match=_account_match(slug, data.get("account_match", "userName")),
        sso=data.get("sso", {}),
        provisioning=data.get("provisioning", {}),
        oidc=data.get("oidc", {}),
        mappings=_mapping_rows(slug, data.get("mappings", {})),
        sp_hints=_sp_hints(slug, data["kind"], data.get("sp_hints", {})),
    )


@cache
def load_catalog() -> dict[str, Template]:
    """Templates by slug. The files ship with the code, so reading them once per process is right."""
    templates = [_load(path) for path in sorted(CATALOG_DIR.glob("*.json"))]
    return {template.slug: template for template in sorted(templates, key=lambda t: (t.slug != "twingate", t.name))}


def get_template(slug: str) -> Template | None:
    return load_catalog().get(slug)
