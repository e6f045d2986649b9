"""Reads: the SSO hot path, and for the console and the API who fetched a connector's metadata.

The SSO path runs a handful of small reads per sign-in. Through the ORM each costs 0.3-1.3 ms of
query compilation here; as plain SQL 0.03-0.1 ms (bench/saml_sso.py), which is the difference
between ~150 and ~300 responses per second on two cores. Those reads are written out below, with
parameters always bound; tests/saml_idp check them against their ORM equivalents.
"""

import uuid

from django.db import connection

from apps.connectors.models import Connector, ConnectorKind, SsoSettings
from apps.directory.models import User
from apps.saml_idp.keys import connector_override_key, portal_next_key
from apps.saml_idp.models import MetadataFetch


def sso_connector(slug: str) -> Connector | None:
    """The connector at /saml/idp/<slug>/ with its SSO settings, if it is a SAML app."""
    connector = next(
        iter(
            Connector.objects.raw(
                "SELECT * FROM connectors_connector WHERE slug = %s AND kind IN (%s, %s)",
                [slug, ConnectorKind.SAML.value, ConnectorKind.SAML_SCIM.value],
            )
        ),
        None,
    )
    if connector is None:
        return None
    sso = next(
        iter(
            SsoSettings.objects.raw(
                "SELECT * FROM connectors_ssosettings WHERE connector_id = %s", [_uuid_param(connector.pk)]
            )
        ),
        None,
    )
    if sso is None:
        return None
    connector.sso = sso  # fills the reverse one-to-one cache: connector.sso costs no further query
    return connector


def _uuid_param(value: uuid.UUID) -> object:
    # SQLite stores UUIDs as 32 hex characters, PostgreSQL as uuid: let the field say which.
    return User._meta.pk.get_db_prep_value(value, connection)


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def user_assigned(connector_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Same answer as apps.connectors.selectors.user_is_assigned (directly or through a group)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM connectors_assignment a "
            "LEFT JOIN directory_membership m ON m.group_id = a.group_id AND m.user_id = %s "
            "WHERE a.connector_id = %s AND (a.user_id = %s OR m.user_id IS NOT NULL) LIMIT 1",
            [_uuid_param(user_id), _uuid_param(connector_id), _uuid_param(user_id)],
        )
        return cursor.fetchone() is not None


def saml_mapping_rows(connector_id: uuid.UUID) -> list[tuple[str, str, str]]:
    """(source, target, name_format) of the connector's SAML mappings, in their order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT source, target, name_format FROM connectors_attributemapping "
            "WHERE connector_id = %s AND kind = %s ORDER BY position, id",
            [_uuid_param(connector_id), "saml"],
        )
        return [tuple(row) for row in cursor.fetchall()]


def user_group_names(user_id: uuid.UUID) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT g.name FROM directory_group g JOIN directory_membership m ON m.group_id = g.id "
            "WHERE m.user_id = %s",
            [_uuid_param(user_id)],
        )
        return sorted(row[0] for row in cursor.fetchall())


def signing_key_choice(connector_id: uuid.UUID) -> uuid.UUID | None:
    """Id of the key that signs for the connector: its own, else the portal's active key."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, scope FROM saml_idp_signingkey "
            "WHERE (scope = 'portal' AND status = 'active') "
            "OR id IN (SELECT key_id FROM saml_idp_connectorsigningkey WHERE connector_id = %s)",
            [_uuid_param(connector_id)],
        )
        by_scope = {scope: key_id for key_id, scope in cursor.fetchall()}
    chosen = by_scope.get("connector") or by_scope.get("portal")
    return _as_uuid(chosen) if chosen is not None else None


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
