"""The NameID and the attribute statement a connector sends for a user, from its SAML mappings."""

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from apps.connectors.attributes import render_source
from apps.connectors.models import Connector
from apps.connectors.properties import text_values, user_values
from apps.directory.models import User
from apps.saml_idp.constants import NAMEID_FORMATS
from apps.saml_idp.selectors import SignInFacts, saml_mapping_rows, user_group_names

# Characters XML 1.0 cannot carry at all; a value holding one would make the response unparseable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class SamlAttribute:
    name: str
    name_format: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Subject:
    name_id: str
    name_id_format: str
    attributes: tuple[SamlAttribute, ...]


def xml_text(value: Any) -> str:
    """A value as XML text: booleans as SAML writes them, characters XML cannot hold removed."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def user_properties(user: User, groups: list[str] | None, sources: Iterable[str] = ()) -> dict[str, Any]:
    """The values of the properties `sources` read (apps.connectors.properties), and the user's
    identity (id, username, email, names, status)."""
    return user_values(user, sources, groups=groups)


def name_id_value(connector: Connector, user: User) -> str:
    """The NameID: the configured property of the user (persistent uses the immutable directory id)."""
    sso = connector.sso
    if sso.nameid_format == "persistent":
        return str(user.pk)
    if sso.nameid_format == "transient":
        # A fresh opaque value per response: the app cannot correlate sign-ins through it.
        return "_" + secrets.token_hex(16)
    value = {
        "username": user.username,
        "email": user.email,
        "id": str(user.pk),
        "employee_id": user.employee_id,
    }[sso.nameid_property]
    return xml_text(value)


def subject_for(connector: Connector, user: User, facts: SignInFacts | None = None) -> Subject:
    """NameID and attributes for `user` at `connector`. Empty values are left out, as SPs expect.

    `facts` (`selectors.sign_in_facts`), when given, supply the mappings and groups without a query.
    """
    if facts is not None:
        mappings, groups = facts.mappings, facts.groups
    else:
        mappings = saml_mapping_rows(connector.pk)
        groups = user_group_names(user.pk) if any(source == "groups" for source, _, _ in mappings) else None
    properties = user_properties(user, groups, [source for source, _, _ in mappings])
    attributes = []
    for source, target, name_format in mappings:
        rendered = text_values(render_source(source, properties))
        raw_values = rendered if isinstance(rendered, list) else [rendered]
        values = tuple(xml_text(value) for value in raw_values if value is not None and value != "")
        if not values and source != "groups":
            continue
        attributes.append(SamlAttribute(name=target, name_format=name_format, values=values))
    return Subject(
        name_id=name_id_value(connector, user),
        name_id_format=NAMEID_FORMATS[connector.sso.nameid_format],
        attributes=tuple(attributes),
    )
