"""The connector catalog: one JSON file per template, loaded as data; adding one needs no code."""

import json
import shutil
from pathlib import Path

import pytest

from apps.connectors import catalog
from apps.connectors.catalog import CatalogError, Template, get_template, load_catalog
from apps.connectors.models import (
    AttributeMapping,
    ConnectorKind,
    MappingKind,
    ProvisioningOperation,
    ProvisioningSettings,
    SsoSettings,
)

REAL_CATALOG_DIR = catalog.CATALOG_DIR
CATALOG_FILES = sorted(REAL_CATALOG_DIR.glob("*.json"))

# The templates the product promises, with their kinds.
REQUIRED = {
    "twingate": ConnectorKind.SAML_SCIM,
    "generic-saml": ConnectorKind.SAML,
    "generic-scim": ConnectorKind.SCIM,
    "generic-saml-scim": ConnectorKind.SAML_SCIM,
    "bookmark": ConnectorKind.BOOKMARK,
    "slack": ConnectorKind.SAML_SCIM,
    "github-enterprise": ConnectorKind.SAML_SCIM,
    "zoom": ConnectorKind.SAML_SCIM,
    "atlassian": ConnectorKind.SAML_SCIM,
    "google-workspace": ConnectorKind.SAML,
}

# The seed's attribute table, written out here rather than read from the code under test.
SEED_USER_ROWS = [
    ("username", "userName"),
    ("email", 'emails[type eq "work"].value'),
    ("status", "active"),
    ("first_name", "name.givenName"),
    ("last_name", "name.familyName"),
    ("display_name", "name.formatted"),
    ("display_name", "displayName"),
    ("employee_id", "externalId"),
]
SEED_GROUP_ROWS = [("name", "displayName"), ("members", "members")]

NEW_TEMPLATE = {
    "slug": "acme-hr",
    "name": "Acme HR",
    "kind": "saml_scim",
    "description": "Acme's HR suite.",
    "logo": "connectors/logos/generic-saml-scim.svg",
    "setup_notes": "Paste the IdP metadata URL into Acme.",
    "sso": {"nameid_format": "persistent", "nameid_property": "employee_id", "sp_entity_id": "https://hr.acme.test"},
    "provisioning": {"operations": ["create_users", "update_users"], "deprovision": "delete"},
    "mappings": {
        "scim_user": [
            {"source": "username", "target": "userName"},
            {"source": "{first_name}.{last_name}", "target": "displayName"},
            {
                "source": "employee_id",
                "target": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            },
        ],
        "scim_group": "seed",
        "saml": [{"source": "groups", "target": "memberOf", "name_format": "uri"}],
    },
}


@pytest.fixture
def fresh_catalog():
    """Read the catalog afresh now and again after the test, whatever it pointed CATALOG_DIR at."""
    load_catalog.cache_clear()
    yield
    load_catalog.cache_clear()


@pytest.fixture
def catalog_copy(tmp_path, monkeypatch, fresh_catalog) -> Path:
    """A temporary copy of the shipped catalog folder that the loader reads instead."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    for path in CATALOG_FILES:
        shutil.copy(path, folder / path.name)
    monkeypatch.setattr(catalog, "CATALOG_DIR", folder)
    return folder


def _rows(template: Template, kind: str) -> list[tuple[str, str]]:
    return [(row.source, row.target) for row in template.mappings if row.kind == kind]


# --- The shipped files ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", CATALOG_FILES, ids=[path.stem for path in CATALOG_FILES])
def test_every_template_file_loads(path, fresh_catalog):
    data = json.loads(path.read_text())
    template = get_template(path.stem)

    assert template is not None
    assert template.slug == data["slug"] == path.stem
    assert template.kind in ConnectorKind.values
    assert template.name
    assert template.description
    assert template.logo.startswith("connectors/logos/")
    # The defaults are model fields with valid values, so a connector can be built from them.
    sso_fields = {field.name: field for field in SsoSettings._meta.get_fields()}
    for name, value in template.sso.items():
        assert name in sso_fields, (path.name, name)
        sso_fields[name].clean(value, None)
    provisioning_fields = {field.name: field for field in ProvisioningSettings._meta.get_fields()}
    for name, value in template.provisioning.items():
        assert name in provisioning_fields, (path.name, name)
        if name == "operations":
            assert set(value) <= set(ProvisioningOperation.values)
        else:
            provisioning_fields[name].clean(value, None)


def test_catalog_holds_exactly_one_template_per_file(fresh_catalog):
    assert set(load_catalog()) == {path.stem for path in CATALOG_FILES}


@pytest.mark.parametrize(("slug", "kind"), REQUIRED.items())
def test_required_templates_exist_with_their_kind(slug, kind, fresh_catalog):
    template = get_template(slug)

    assert template is not None, slug
    assert template.kind == kind


def test_twingate_comes_first_then_by_name(fresh_catalog):
    templates = list(load_catalog().values())

    assert templates[0].slug == "twingate"
    assert [t.name for t in templates[1:]] == sorted(t.name for t in templates[1:])


def test_unknown_slug_is_none(fresh_catalog):
    assert get_template("no-such-app") is None


def test_twingate_has_exactly_the_seed_scim_mappings(fresh_catalog):
    twingate = get_template("twingate")

    assert _rows(twingate, MappingKind.SCIM_USER) == SEED_USER_ROWS
    assert _rows(twingate, MappingKind.SCIM_GROUP) == SEED_GROUP_ROWS
    assert tuple(SEED_USER_ROWS) == catalog.SEED_SCIM_USER_MAPPINGS
    assert tuple(SEED_GROUP_ROWS) == catalog.SEED_SCIM_GROUP_MAPPINGS


def test_twingate_saml_statement_includes_group_membership(fresh_catalog):
    saml = {row.target: row for row in get_template("twingate").mappings if row.kind == MappingKind.SAML}

    assert {"email", "firstName", "lastName", "groups"} == set(saml)
    assert saml["groups"].source == "groups"
    assert {row.name_format for row in saml.values()} == {"basic"}


def test_twingate_sso_and_provisioning_defaults(fresh_catalog):
    twingate = get_template("twingate")

    assert twingate.sso["nameid_format"] == "email"
    assert twingate.sso["sign_response"] is True
    assert twingate.sso["sign_assertion"] is True
    assert twingate.provisioning["deprovision"] == "deactivate"
    assert set(twingate.provisioning["operations"]) == {
        "create_users",
        "update_users",
        "deactivate_users",
        "push_groups",
    }


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# What each vendor's SCIM documentation lists beyond the seed table (and nothing it does not list:
# GitHub's and Twingate's SCIM APIs take no job title, department or manager).
VENDOR_PROFILE_ROWS = {
    "slack": [
        ("title", "title"),
        ("phone_numbers", "phoneNumbers"),
        ("employee_id", f"{ENTERPRISE}:employeeNumber"),
        ("cost_center", f"{ENTERPRISE}:costCenter"),
        ("organization", f"{ENTERPRISE}:organization"),
        ("division", f"{ENTERPRISE}:division"),
        ("department", f"{ENTERPRISE}:department"),
        ("manager.app_id", f"{ENTERPRISE}:manager.value"),
    ],
    "zoom": [
        ("title", "title"),
        ("department", f"{ENTERPRISE}:department"),
        ("organization", f"{ENTERPRISE}:organization"),
    ],
}


@pytest.mark.parametrize(
    "slug", ["generic-scim", "generic-saml-scim", "slack", "zoom", "atlassian", "github-enterprise", "twingate"]
)
def test_scim_templates_use_the_seed_table_and_what_their_vendor_documents(slug, fresh_catalog):
    template = get_template(slug)

    assert _rows(template, MappingKind.SCIM_USER) == SEED_USER_ROWS + VENDOR_PROFILE_ROWS.get(slug, [])
    assert _rows(template, MappingKind.SCIM_GROUP) == SEED_GROUP_ROWS


def test_kinds_match_what_the_templates_configure(fresh_catalog):
    for template in load_catalog().values():
        has_sso = template.kind in (ConnectorKind.SAML, ConnectorKind.SAML_SCIM)
        has_oidc = template.kind in (ConnectorKind.OIDC, ConnectorKind.OIDC_SCIM)
        has_scim = template.kind in (ConnectorKind.SCIM, ConnectorKind.SAML_SCIM, ConnectorKind.OIDC_SCIM)
        kinds = {row.kind for row in template.mappings}
        assert has_sso or (not template.sso and MappingKind.SAML not in kinds), template.slug
        assert has_oidc or (not template.oidc and MappingKind.OIDC not in kinds), template.slug
        assert has_scim or (not template.provisioning and not kinds & {"scim_user", "scim_group"}), template.slug


def test_bookmark_template_has_nothing_but_the_link(fresh_catalog):
    bookmark = get_template("bookmark")

    assert bookmark.kind == ConnectorKind.BOOKMARK
    assert bookmark.sso == {}
    assert bookmark.provisioning == {}
    assert bookmark.mappings == ()


def test_catalog_is_read_once_per_process(fresh_catalog):
    assert load_catalog() is load_catalog()


# --- Adding a template is adding a file -----------------------------------------------------------


def test_new_template_file_is_picked_up(catalog_copy):
    (catalog_copy / "acme-hr.json").write_text(json.dumps(NEW_TEMPLATE))

    template = get_template("acme-hr")

    assert template is not None
    assert template.name == "Acme HR"
    assert template.kind == ConnectorKind.SAML_SCIM
    assert template.setup_notes == "Paste the IdP metadata URL into Acme."
    assert _rows(template, MappingKind.SCIM_GROUP) == SEED_GROUP_ROWS
    assert ("{first_name}.{last_name}", "displayName") in _rows(template, MappingKind.SCIM_USER)
    assert set(load_catalog()) == {path.stem for path in CATALOG_FILES} | {"acme-hr"}


def test_connector_is_created_from_a_new_template_file(catalog_copy, db):
    from apps.connectors.services import connector_create

    (catalog_copy / "acme-hr.json").write_text(json.dumps(NEW_TEMPLATE))

    connector = connector_create(actor=None, template="acme-hr")

    assert (connector.slug, connector.kind, connector.template) == ("acme-hr", "saml_scim", "acme-hr")
    assert connector.sso.nameid_format == "persistent"
    assert connector.sso.nameid_property == "employee_id"
    assert connector.sso.sp_entity_id == "https://hr.acme.test"
    assert connector.provisioning.deprovision == "delete"
    rows = AttributeMapping.objects.filter(connector=connector)
    assert rows.filter(kind=MappingKind.SCIM_USER).count() == 3
    assert rows.filter(kind=MappingKind.SCIM_GROUP).count() == 2
    saml = rows.get(kind=MappingKind.SAML)
    assert (saml.source, saml.target, saml.name_format) == (
        "groups",
        "memberOf",
        "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
    )


def test_new_template_is_listed_by_the_api(catalog_copy, api_client):
    (catalog_copy / "acme-hr.json").write_text(json.dumps(NEW_TEMPLATE))

    response = api_client.get("/api/v1/catalog")
    single = api_client.get("/api/v1/catalog/acme-hr")

    assert response.status_code == 200
    assert "acme-hr" in [item["slug"] for item in response.json()]
    assert single.status_code == 200
    assert single.json()["name"] == "Acme HR"


def test_removed_template_file_disappears(catalog_copy):
    (catalog_copy / "zoom.json").unlink()

    assert get_template("zoom") is None
    assert get_template("twingate") is not None


# --- A broken template names its file -------------------------------------------------------------


def _write(folder: Path, name: str, data) -> None:
    (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))


def test_slug_not_matching_the_file_name_is_refused(catalog_copy):
    _write(catalog_copy, "broken-app.json", {**NEW_TEMPLATE, "slug": "other-slug"})

    with pytest.raises(CatalogError, match=r"broken-app\.json: slug 'other-slug' must match the file name"):
        load_catalog()


def test_unknown_kind_is_refused(catalog_copy):
    _write(catalog_copy, "broken-app.json", {**NEW_TEMPLATE, "slug": "broken-app", "kind": "ldap"})

    with pytest.raises(CatalogError, match=r"broken-app: unknown kind 'ldap'"):
        load_catalog()


def test_unknown_mapping_kind_is_refused(catalog_copy):
    _write(catalog_copy, "broken-app.json", {**NEW_TEMPLATE, "slug": "broken-app", "mappings": {"ldap": []}})

    with pytest.raises(CatalogError, match=r"broken-app: unknown mapping kind 'ldap'"):
        load_catalog()


def test_seed_for_saml_does_not_exist(catalog_copy):
    _write(catalog_copy, "broken-app.json", {**NEW_TEMPLATE, "slug": "broken-app", "mappings": {"saml": "seed"}})

    with pytest.raises(CatalogError, match=r"broken-app: there are no seed mappings for saml"):
        load_catalog()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"source": "shoe_size", "target": "userName"}, "Unknown directory property"),
        ({"source": "username", "target": "id"}, "set by the app itself"),
        ({"source": "email", "target": "active"}, "active takes the status property"),
        ({"source": "first_name", "target": "name"}, "Name a sub-attribute of name"),
    ],
)
def test_invalid_mapping_row_is_refused(catalog_copy, row, message):
    _write(catalog_copy, "broken-app.json", {**NEW_TEMPLATE, "slug": "broken-app", "mappings": {"scim_user": [row]}})

    with pytest.raises(CatalogError, match=rf"^broken-app: mapping {row['source']} -> {row['target']}: .*{message}"):
        load_catalog()


def test_malformed_json_is_refused_naming_the_file(catalog_copy):
    _write(catalog_copy, "broken-app.json", '{"slug": "broken-app", "name": ')

    with pytest.raises(CatalogError, match=r"broken-app\.json"):
        load_catalog()


@pytest.mark.parametrize("missing", ["slug", "name", "kind"])
def test_missing_required_key_is_refused_naming_the_file(catalog_copy, missing):
    data = {key: value for key, value in {**NEW_TEMPLATE, "slug": "broken-app"}.items() if key != missing}
    _write(catalog_copy, "broken-app.json", data)

    with pytest.raises(CatalogError, match=r"broken-app"):
        load_catalog()


def test_a_broken_file_is_not_cached_as_a_half_catalog(catalog_copy):
    _write(catalog_copy, "broken-app.json", {**NEW_TEMPLATE, "slug": "broken-app", "kind": "ldap"})
    with pytest.raises(CatalogError):
        load_catalog()

    (catalog_copy / "broken-app.json").unlink()

    assert "twingate" in load_catalog()


# --- What the app's own SAML values look like (sp_hints) -------------------------------------------


def test_twingate_hints_at_its_network_urls(fresh_catalog):
    hints = get_template("twingate").sp_hints
    assert hints == {
        "entity_id": "https://<network>.twingate.com/auth/saml/metadata",
        "acs_url": "https://<network>.twingate.com/auth/saml/callback",
    }


def test_every_hint_is_for_an_app_with_saml(fresh_catalog):
    for template in load_catalog().values():
        if template.sp_hints:
            assert template.kind in (ConnectorKind.SAML, ConnectorKind.SAML_SCIM), template.slug
            assert set(template.sp_hints) <= {"entity_id", "acs_url"}


@pytest.mark.parametrize(
    ("kind", "hints", "message"),
    [
        ("saml", {"acs": "https://x"}, r"broken-app: unknown sp_hints acs; known: entity_id, acs_url"),
        ("saml", {"acs_url": ""}, r"broken-app: sp_hints\.acs_url must be a non-empty string"),
        ("saml", {"acs_url": 3}, r"broken-app: sp_hints\.acs_url must be a non-empty string"),
        ("saml", ["https://x"], r"broken-app: sp_hints must be an object"),
        ("scim", {"acs_url": "https://x"}, r"broken-app: sp_hints are for apps with SAML sign-in"),
    ],
)
def test_malformed_hints_are_refused(catalog_copy, kind, hints, message):
    data = {**NEW_TEMPLATE, "slug": "broken-app", "kind": kind, "sp_hints": hints}
    data.pop("mappings", None)
    _write(catalog_copy, "broken-app.json", data)

    with pytest.raises(CatalogError, match=message):
        load_catalog()
