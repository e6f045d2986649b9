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
        f"|| CASE WHEN {row}.waiting_events > 0 THEN '{WAITING}' ELSE '' END"
    )


def register() -> None:
    rowcounts.register(LINKS_COUNTER, RemoteObject._meta.db_table, scope=_connector_of, part=_link_state, moves=True)
