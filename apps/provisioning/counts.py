"""The counter of a connector's links per state, kept exactly by the database (apps.common.rowcounts):
the console's counts without a COUNT of a million links on every page (read by
selectors.provisioning_states)."""

from apps.common import rowcounts
from apps.provisioning.models import RemoteObject

LINKS_COUNTER = "provisioning_links"
# A synced link whose last state sent said active=false (the filter `last_sent__active=False`,
# as Django writes it for each database, so a count and its list agree).
INACTIVE = ":inactive"
# A link with unprocessed outbox events (RemoteObject.waiting_events, apps.provisioning.waiting).
WAITING = ":waiting"
# A link whose object the app has not created yet (no remote id), and a group's link: the breaker's
# threshold counts the users the app has (breaker.deprovision_threshold).
UNSENT = ":unsent"
GROUP = ":group"


def _connector_of(vendor: str, row: str) -> str:
    return f"CAST({row}.connector_id AS TEXT)" if vendor == "postgresql" else f"{row}.connector_id"


def _link_state(vendor: str, row: str) -> str:
    if vendor == "postgresql":
        inactive = f"({row}.last_sent -> 'active') = 'false'::jsonb"
    else:
        path = "'$.\"active\"'"
        kind = f"JSON_TYPE({row}.last_sent, {path})"
        inactive = (
            f"(CASE WHEN {kind} IN ('true', 'false', 'null') THEN {kind} "
            f"ELSE JSON_EXTRACT({row}.last_sent, {path}) END) = 'false'"
        )
    return (
        f"{row}.status || CASE WHEN {row}.status = 'synced' AND {inactive} THEN '{INACTIVE}' ELSE '' END "
        f"|| CASE WHEN {row}.waiting_events > 0 THEN '{WAITING}' ELSE '' END "
        f"|| CASE WHEN {row}.remote_id = '' THEN '{UNSENT}' ELSE '' END "
        f"|| CASE WHEN {row}.object_type = 'group' THEN '{GROUP}' ELSE '' END"
    )


def register() -> None:
    rowcounts.register(LINKS_COUNTER, RemoteObject._meta.db_table, scope=_connector_of, part=_link_state, moves=True)


def link_counts(connector_ids: list) -> dict:
    """Connector id -> {(status, flags): links}, flags a frozenset of INACTIVE, WAITING, UNSENT, GROUP."""
    from django.db import connection

    from apps.connectors.models import Connector

    scopes = {str(Connector._meta.pk.get_db_prep_value(pk, connection)): pk for pk in connector_ids}
    result: dict = {pk: {} for pk in connector_ids}
    for (scope, part), count in rowcounts.counts(LINKS_COUNTER, scopes).items():
        status, *flags = part.split(":")
        key = (status, frozenset(f":{flag}" for flag in flags))
        by_part = result[scopes[scope]]
        by_part[key] = by_part.get(key, 0) + count
    return result


def linked_user_count(connector_id: object, *, excluding: frozenset[str] = frozenset()) -> int:
    """The connector's users the app has (linked: a remote id), from the counter; `excluding`
    leaves out links of these statuses."""
    return sum(
        count
        for (status, flags), count in link_counts([connector_id])[connector_id].items()
        if GROUP not in flags and UNSENT not in flags and status not in excluding
    )
