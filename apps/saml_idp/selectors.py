"""Reads for the console and the API: who fetched a connector's metadata, and with which keys."""

from apps.connectors.models import Connector, ConnectorKind
from apps.saml_idp.keys import connector_override_key, portal_next_key
from apps.saml_idp.models import MetadataFetch


def sso_connector(slug: str) -> Connector | None:
    """The connector at /saml/idp/<slug>/ with its SSO settings, if it is a SAML app."""
    try:
        connector = Connector.objects.select_related("sso").get(
            slug=slug, kind__in=[ConnectorKind.SAML, ConnectorKind.SAML_SCIM]
        )
    except Connector.DoesNotExist:
        return None
    return connector if getattr(connector, "sso", None) is not None else None


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
