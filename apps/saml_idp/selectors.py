"""Reads: the SSO hot path, and for the console and the API who fetched a connector's metadata.

The SSO path runs a handful of small reads per sign-in. Through the ORM each costs 0.3-1.3 ms of
query compilation here; as plain SQL 0.03-0.1 ms (bench/saml_sso.py), which is the difference
between ~150 and ~300 responses per second on two cores. Those reads are written out below, with
parameters always bound; tests/saml_idp check them against their ORM equivalents.

On PostgreSQL each statement is also a round trip that costs the server about as much CPU as the
client: the path reads in two statements what it needs (`sso_connector`: the connector, its SSO
settings and the key that signs for it; `sign_in_facts`: the assignment, the mappings and the
user's groups). Both are prepared statements there (`hot_path_cursor`): planning them cost the
server 0.1-0.2 ms each. Inside a request `sso_connector` comes from the process's cache, which
every process drops the moment one of the tables it reads changes (apps.common.generations); the
assignment and the user's groups are always read.
"""

import copy
import uuid
from dataclasses import dataclass
from functools import cache

from django.db import connection
from django.db.models import Model
from django.db.models.base import ModelState

from apps.common import generations
from apps.common.db import hot_path_cursor, model_columns, model_from_row
from apps.connectors.models import Connector, ConnectorKind, SsoSettings
from apps.saml_idp.keys import CHOSEN_KEY_SQL, as_uuid, connector_override_key, portal_next_key, uuid_param
from apps.saml_idp.models import MetadataFetch


@cache
def _sso_connector_sql() -> str:
    # Every concrete column of both models, so that a field added to either is loaded too. Only
    # column names from the models' metadata, quoted, go into the text; values are bound.
    return (
        f"SELECT {model_columns(Connector, 'c')}, {model_columns(SsoSettings, 's')}, {CHOSEN_KEY_SQL} "  # noqa: S608
        "FROM connectors_connector c JOIN connectors_ssosettings s ON s.connector_id = c.id "
        "WHERE c.slug = %s AND c.kind IN (%s, %s)"
    )


# The cache's generation: replaced whenever a connector, its SSO settings or a signing key (or
# which key a connector uses) is written (watched in SamlIdpConfig.ready()).
SSO_CONNECTOR_GENERATION = "saml_idp.sso_connector"
SSO_CONNECTOR_TABLES = (
    Connector._meta.db_table,
    SsoSettings._meta.db_table,
    "saml_idp_signingkey",
    "saml_idp_connectorsigningkey",
)


def sso_connector(slug: str) -> Connector | None:
    """The connector at /saml/idp/<slug>/ with its SSO settings, if it is a SAML app (one query,
    or none when this process has it cached under the current generation).

    The connector comes annotated with `signing_key_id`, the id of the key that signs for it now
    (None when no key exists yet), which `keys.loaded_key_for` uses instead of asking again. Each
    call returns its own copy: callers may change it without touching the cache.
    """
    cached = generations.cached(SSO_CONNECTOR_GENERATION, slug, lambda: _read_sso_connector(slug))
    return _copy_of(cached) if cached is not None else None


def _copy_of(template: Connector) -> Connector:
    sso = _shallow_copy(template.sso)
    connector = _shallow_copy(template)
    connector.sso = sso  # the reverse one-to-one, both ways, as the query result had it
    return connector


def _shallow_copy(instance: Model) -> Model:
    """A new instance with the same field values and a state of its own (copy.copy goes through
    pickling's __reduce__, several times slower), JSON values (ACS URLs, algorithms) copied too."""
    copied = instance.__class__.__new__(instance.__class__)
    values = {
        name: copy.deepcopy(value) if isinstance(value, list | dict) else value
        for name, value in instance.__dict__.items()
        if name != "_state"
    }
    state = ModelState()
    state.adding, state.db = instance._state.adding, instance._state.db
    copied.__dict__.update(values, _state=state)
    return copied


def _read_sso_connector(slug: str) -> Connector | None:
    with hot_path_cursor() as cursor:
        cursor.execute(_sso_connector_sql(), [slug, ConnectorKind.SAML.value, ConnectorKind.SAML_SCIM.value])
        row = cursor.fetchone()
    if row is None:
        return None
    connector_width = len(Connector._meta.concrete_fields)
    connector = model_from_row(Connector, row[:connector_width])
    connector.sso = model_from_row(SsoSettings, row[connector_width:-1])  # fills the reverse one-to-one cache
    connector.signing_key_id = as_uuid(row[-1]) if row[-1] is not None else None
    return connector


def user_assigned(connector_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Same answer as apps.connectors.selectors.user_is_assigned (directly or through a group)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM connectors_assignment a "
            "LEFT JOIN directory_membership m ON m.group_id = a.group_id AND m.user_id = %s "
            "WHERE a.connector_id = %s AND (a.user_id = %s OR m.user_id IS NOT NULL) LIMIT 1",
            [uuid_param(user_id), uuid_param(connector_id), uuid_param(user_id)],
        )
        return cursor.fetchone() is not None


def saml_mapping_rows(connector_id: uuid.UUID) -> list[tuple[str, str, str]]:
    """(source, target, name_format) of the connector's SAML mappings, in their order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT source, target, name_format FROM connectors_attributemapping "
            "WHERE connector_id = %s AND kind = %s ORDER BY position, id",
            [uuid_param(connector_id), "saml"],
        )
        return [tuple(row) for row in cursor.fetchall()]


def user_group_names(user_id: uuid.UUID) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT g.name FROM directory_group g JOIN directory_membership m ON m.group_id = g.id "
            "WHERE m.user_id = %s",
            [uuid_param(user_id)],
        )
        return sorted(row[0] for row in cursor.fetchall())


@dataclass(frozen=True)
class SignInFacts:
    """What a sign-in needs to know about a user at a connector, read in one round trip."""

    assigned: bool
    # (source, target, name_format) of the connector's SAML mappings, in their order.
    mappings: list[tuple[str, str, str]]
    # The user's group names (sorted), or None when no mapping sends groups.
    groups: list[str] | None


# One statement in three parts, told apart by the first column: 0 whether the user is assigned
# (always one row), 1 the SAML mappings in order, 2 the user's groups if a mapping sends them.
_SIGN_IN_FACTS_SQL = (
    "SELECT 0, 0, 0, CASE WHEN EXISTS (SELECT 1 FROM connectors_assignment a "
    "WHERE a.connector_id = %(connector)s AND (a.user_id = %(user)s "
    "OR a.group_id IN (SELECT m.group_id FROM directory_membership m WHERE m.user_id = %(user)s))) "
    "THEN 'assigned' ELSE '' END, '', '' "
    "UNION ALL "
    "SELECT 1, position, id, source, target, name_format FROM connectors_attributemapping "
    "WHERE connector_id = %(connector)s AND kind = 'saml' "
    "UNION ALL "
    "SELECT 2, 0, 0, g.name, '', '' FROM directory_group g JOIN directory_membership m ON m.group_id = g.id "
    "WHERE m.user_id = %(user)s AND EXISTS (SELECT 1 FROM connectors_attributemapping "
    "WHERE connector_id = %(connector)s AND kind = 'saml' AND source = 'groups') "
    "ORDER BY 1, 2, 3"
)


def sign_in_facts(connector_id: uuid.UUID, user_id: uuid.UUID) -> SignInFacts:
    """`user_assigned`, `saml_mapping_rows` and `user_group_names` (when needed) in one query."""
    with hot_path_cursor() as cursor:
        cursor.execute(_SIGN_IN_FACTS_SQL, {"user": uuid_param(user_id), "connector": uuid_param(connector_id)})
        rows = cursor.fetchall()
    mappings = [(source, target, name_format) for part, _, _, source, target, name_format in rows if part == 1]
    groups = sorted(name for part, _, _, name, _, _ in rows if part == 2)
    return SignInFacts(
        assigned=rows[0][3] == "assigned",
        mappings=mappings,
        groups=groups if any(source == "groups" for source, _, _ in mappings) else None,
    )


def metadata_fetch_list(connector: Connector, *, limit: int = 100) -> list[dict]:
    next_key = None if connector_override_key(connector) else portal_next_key()
    return [
        {
            "created": fetch.created,
            "ip": fetch.ip,
            "user_agent": fetch.user_agent,
            "key_ids": fetch.key_ids,
            "has_next_key": next_key is not None and str(next_key.pk) in fetch.key_ids,
        }
        for fetch in MetadataFetch.objects.filter(connector=connector).order_by("-created", "-id")[:limit]
    ]


def next_key_pickup(connector: Connector) -> dict:
    """Per client address, its latest fetch and whether that fetch already carried the next key.

    An app that fetched metadata since the next key was created trusts it, so switching to that
    key will not break its sign-in; an app that did not must be updated first.
    """
    next_key = None if connector_override_key(connector) else portal_next_key()
    latest: dict[str | None, MetadataFetch] = {}
    for fetch in MetadataFetch.objects.filter(connector=connector).order_by("-created", "-id")[:1000]:
        latest.setdefault(fetch.ip, fetch)
    clients = [
        {
            "ip": ip,
            "last_fetch": fetch.created,
            "has_next_key": next_key is not None and str(next_key.pk) in fetch.key_ids,
        }
        for ip, fetch in latest.items()
    ]
    return {
        "next_key": str(next_key.pk) if next_key else None,
        "clients": clients,
        "all_clients_have_next_key": bool(next_key and clients and all(c["has_next_key"] for c in clients)),
    }
