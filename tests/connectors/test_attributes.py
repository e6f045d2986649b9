"""Mapping rows: directory properties, source templates, SCIM attribute paths and SAML names (pure)."""

import pytest

from apps.connectors.attributes import (
    ENTERPRISE_USER_URN,
    SAML_NAME_FORMATS,
    MappingError,
    parse_scim_path,
    render_source,
    target_key,
    template_placeholders,
    validate_mapping,
    validate_saml_target,
    validate_scim_target,
    validate_source,
)
from apps.connectors.models import MappingKind

USER = MappingKind.SCIM_USER
GROUP = MappingKind.SCIM_GROUP
SAML = MappingKind.SAML


def _error(call, *args) -> MappingError:
    with pytest.raises(MappingError) as excinfo:
        call(*args)
    return excinfo.value


# --- SCIM targets: valid ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "userName",
        "username",
        "USERNAME",
        "displayName",
        "externalId",
        "active",
        "title",
        "name.givenName",
        "name.familyName",
        "name.formatted",
        "NAME.GIVENNAME",
        'emails[type eq "work"].value',
        "emails[primary eq true].value",
        "emails.value",
        'phoneNumbers[type eq "mobile"].value',
        'addresses[type eq "work"].locality',
        "emails[value pr].value",
        f"{ENTERPRISE_USER_URN}:employeeNumber",
        f"{ENTERPRISE_USER_URN}:department",
        f"{ENTERPRISE_USER_URN}:manager.value",
        f"{ENTERPRISE_USER_URN.lower()}:EMPLOYEENUMBER",
        # An app's own extension schema: its attributes are the app's to define.
        "urn:example:params:scim:schemas:extension:acme:1.0:User:badgeNumber",
    ],
)
def test_valid_scim_user_targets(target):
    path = validate_scim_target(USER, target)
    assert path.attribute


def test_enterprise_extension_path_is_split_into_urn_and_attribute():
    path = validate_scim_target(USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber")

    assert path.urn == ENTERPRISE_USER_URN
    assert path.attribute == "employeeNumber"
    assert path.sub_attribute == ""
    assert path.value_filter == ""


def test_filtered_multi_valued_path_is_parsed():
    path = parse_scim_path('emails[type eq "work"].value')

    assert (path.urn, path.attribute, path.value_filter, path.sub_attribute) == (
        "",
        "emails",
        'type eq "work"',
        "value",
    )


@pytest.mark.parametrize("target", ["displayName", "externalId", "members", "members.value", "DISPLAYNAME"])
def test_valid_scim_group_targets(target):
    validate_scim_target(GROUP, target)


# --- SCIM targets: refused ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "",
        " ",
        "user name",
        "1userName",
        "name..givenName",
        "name.givenName.extra",
        "emails[type eq work].value",  # the compared value must be quoted
        'emails[type eq "work".value',
        'emails[type "work"].value',
        "emails[].value",
        "name.",
        ".name",
        "urn:",
    ],
)
def test_invalid_scim_path_syntax_is_refused(target):
    error = _error(validate_scim_target, USER, target)

    assert error.field == "target"
    assert "not a valid SCIM attribute path" in error.message


@pytest.mark.parametrize("target", ["id", "meta", "groups", "password", "schemas", "ID", "meta.created"])
def test_read_only_scim_targets_are_refused(target):
    error = _error(validate_scim_target, USER, target)

    assert error.field == "target"
    assert "set by the app itself and cannot be mapped" in error.message


@pytest.mark.parametrize("target", ["id", "meta"])
def test_read_only_scim_group_targets_are_refused(target):
    error = _error(validate_scim_target, GROUP, target)

    assert "cannot be mapped" in error.message


def test_unknown_user_attribute_is_refused_naming_the_schema():
    error = _error(validate_scim_target, USER, "favouriteColour")

    assert error.field == "target"
    assert error.message == "favouriteColour is not an attribute of the SCIM User schema."


def test_user_attribute_is_unknown_on_a_group():
    error = _error(validate_scim_target, GROUP, "userName")

    assert error.message == "userName is not an attribute of the SCIM Group schema."


def test_unknown_enterprise_attribute_is_refused():
    error = _error(validate_scim_target, USER, f"{ENTERPRISE_USER_URN}:shoeSize")

    assert "shoeSize is not an attribute" in error.message


@pytest.mark.parametrize("target", ["name", "emails", 'emails[type eq "work"]', "addresses"])
def test_complex_attribute_without_sub_attribute_is_refused(target):
    error = _error(validate_scim_target, USER, target)

    assert error.field == "target"
    assert error.message.startswith("Name a sub-attribute of ")
    assert ".value" in error.message


def test_enterprise_manager_needs_a_sub_attribute():
    error = _error(validate_scim_target, USER, f"{ENTERPRISE_USER_URN}:manager")

    assert "Name a sub-attribute of manager" in error.message


@pytest.mark.parametrize("target", ["name.nickName", "emails.street", "userName.value"])
def test_unknown_sub_attribute_is_refused(target):
    error = _error(validate_scim_target, USER, target)

    assert "has no sub-attribute" in error.message


def test_single_valued_attribute_takes_no_filter():
    error = _error(validate_scim_target, USER, 'userName[type eq "work"]')

    assert error.message == "userName is single-valued and takes no [filter]."


def test_enterprise_user_extension_is_refused_on_a_group():
    error = _error(validate_scim_target, GROUP, f"{ENTERPRISE_USER_URN}:employeeNumber")

    assert error.field == "target"


def test_core_schema_urn_is_refused():
    error = _error(validate_scim_target, USER, "urn:ietf:params:scim:schemas:core:2.0:User:userName")

    assert error.message == "Write core attributes without their schema URN."


# --- Sources --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "username",
        "email",
        "first_name",
        "status",
        "groups",
        "employee_id",
        "{first_name}.{last_name}",
        "{username}@corp.example.com",
        "{first_name} {last_name}",
        "  email  ",
    ],
)
def test_valid_user_sources(source):
    validate_source(USER, source)


@pytest.mark.parametrize("source", ["name", "members", "description", "{name} team"])
def test_valid_group_sources(source):
    validate_source(GROUP, source)


def test_template_placeholders_are_listed_in_order():
    assert template_placeholders("{first_name}.{last_name}") == ["first_name", "last_name"]


def test_empty_source_is_refused():
    error = _error(validate_source, USER, "   ")

    assert error.field == "source"
    assert error.message == "Choose a directory property."


def test_unknown_property_is_refused_listing_the_known_ones():
    error = _error(validate_source, USER, "shoe_size")

    assert error.field == "source"
    assert "Unknown directory property 'shoe_size'" in error.message
    assert "first_name" in error.message
    assert "{first_name}.{last_name}" in error.message


def test_user_property_is_unknown_for_groups():
    error = _error(validate_source, GROUP, "first_name")

    assert "Unknown directory property 'first_name'" in error.message


@pytest.mark.parametrize(
    "source",
    ["{first_name", "first_name}", "{first_name}}", "{{first_name}", "{{first_name}}", "}first_name{", "{a{b}c}"],
)
def test_unbalanced_braces_are_refused(source):
    error = _error(validate_source, USER, source)

    assert error.field == "source"
    assert error.message == "Unbalanced braces in the template."


def test_unknown_property_in_a_template_is_refused():
    error = _error(validate_source, USER, "{first_name}.{nickname}")

    assert error.message == "Unknown directory property {nickname} in the template."


@pytest.mark.parametrize("name", ["status", "groups"])
def test_non_text_property_cannot_be_part_of_a_template(name):
    error = _error(validate_source, USER, f"{{{name}}}-x")

    assert error.field == "source"
    assert error.message == f"{{{name}}} is not text and cannot be part of a template."


def test_members_cannot_be_part_of_a_group_template():
    error = _error(validate_source, GROUP, "{name}: {members}")

    assert "{members} is not text" in error.message


# --- Whole rows -----------------------------------------------------------------------------------


def test_active_takes_the_status_property():
    validate_mapping(USER, "status", "active")


@pytest.mark.parametrize("source", ["email", "username", "{username}"])
@pytest.mark.parametrize("target", ["active", "ACTIVE"])
def test_active_from_anything_but_status_is_refused(source, target):
    error = _error(validate_mapping, USER, source, target)

    assert error.field == "source"
    assert "active takes the status property" in error.message


def test_unknown_kind_is_refused():
    error = _error(validate_mapping, "ldap", "email", "mail")

    assert error.field == "kind"
    assert "scim_user" in error.message


def test_scim_rows_take_no_name_format():
    error = _error(validate_mapping, USER, "email", "userName", "basic")

    assert error.field == "name_format"


def test_source_is_checked_before_target():
    error = _error(validate_mapping, USER, "nope", "nope")

    assert error.field == "source"


@pytest.mark.parametrize(
    "target",
    [
        "email",
        "firstName",
        "User.Email",
        "groups",
        "memberOf",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "urn:oid:0.9.2342.19200300.100.1.3",
        "a" * 255,
    ],
)
def test_valid_saml_attribute_names(target):
    validate_mapping(SAML, "email", target, "basic")


@pytest.mark.parametrize("target", ["", "first name", "a" * 256, "name<script>", "é-mail"])
def test_invalid_saml_attribute_names_are_refused(target):
    error = _error(validate_saml_target, target)

    assert error.field == "target"
    assert "SAML attribute name" in error.message


@pytest.mark.parametrize("name_format", ["", *SAML_NAME_FORMATS, *SAML_NAME_FORMATS.values()])
def test_saml_name_formats_by_short_name_or_urn(name_format):
    validate_mapping(SAML, "email", "email", name_format)


def test_unknown_saml_name_format_is_refused():
    error = _error(validate_mapping, SAML, "email", "email", "urn:example:bogus")

    assert error.field == "name_format"
    assert error.message == "Choose basic, uri or unspecified."


def test_group_membership_saml_attribute_takes_the_groups_property():
    validate_mapping(SAML, "groups", "groups", "basic")


def test_saml_attribute_may_use_a_template():
    validate_mapping(SAML, "{first_name} {last_name}", "fullName", "")


def test_mapping_error_is_a_value_error_with_field_and_message():
    error = MappingError("target", "bad")

    assert isinstance(error, ValueError)
    assert (error.field, error.message, str(error)) == ("target", "bad", "bad")


# --- Duplicate detection keys ---------------------------------------------------------------------


def test_scim_target_keys_ignore_case():
    assert target_key(USER, "userName") == target_key(USER, "USERNAME") == target_key(USER, " username ")
    assert target_key(USER, 'emails[type eq "work"].value') == target_key(USER, 'EMAILS[type eq "work"].VALUE')


def test_scim_target_keys_ignore_whitespace_inside_a_filter():
    assert target_key(USER, 'emails[type eq "work"].value') == target_key(USER, 'emails[type  eq  "work"].value')


def test_scim_target_keys_tell_filters_and_schemas_apart():
    keys = {
        target_key(USER, 'emails[type eq "work"].value'),
        target_key(USER, 'emails[type eq "home"].value'),
        target_key(USER, "emails.value"),
        target_key(USER, "displayName"),
        target_key(USER, "urn:example:acme:1.0:User:displayName"),
    }

    assert len(keys) == 5


def test_saml_target_keys_are_exact_names():
    assert target_key(SAML, " email ") == "email"
    assert target_key(SAML, "Email") != target_key(SAML, "email")


# --- Rendering ------------------------------------------------------------------------------------


VALUES = {
    "username": "ada",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "status": True,
    "groups": ["Engineering", "Staff"],
    "employee_id": None,
}


def test_render_property_returns_its_value_unchanged():
    assert render_source("email", VALUES) == "ada@example.com"
    assert render_source("status", VALUES) is True
    assert render_source("groups", VALUES) == ["Engineering", "Staff"]
    assert render_source("employee_id", VALUES) is None


def test_render_template_fills_placeholders():
    assert render_source("{first_name}.{last_name}", VALUES) == "Ada.Lovelace"
    assert render_source("{username}@corp.example.com", VALUES) == "ada@corp.example.com"


def test_render_template_leaves_missing_or_empty_values_blank():
    assert render_source("{first_name}-{employee_id}-{external_id}", VALUES) == "Ada--"
