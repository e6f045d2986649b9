"""ConnectorRun: what reconciling one connector's objects needs, loaded once per batch.

The connector's settings and SCIM mappings, the client (checked against the outbound URL policy on
every batch), the deliveries log written with the batch's outcomes, approved deprovisioning holds,
the claimed users and whether the app may hold users this connector has not linked.
"""

import functools
import logging
import time
from typing import Any

from apps.common.crypto import SecretDecryptionError, decrypt_secret
from apps.common.http import OutboundURLError, check_outbound_url
from apps.connectors.models import Connector, Deprovision, MappingKind
from apps.connectors.selectors import users_in_scope_among
from apps.directory.models import Membership, User
from apps.provisioning.client import ResponseRecord, ScimClient, ScimError, client_for
from apps.provisioning.counts import linked_user_count
from apps.provisioning.creates_lock import CreatesLock, user_creates_paused
from apps.provisioning.models import Delivery, DeprovisionHold, HoldStatus, ObjectType, RemoteObject, SyncStatus
from apps.provisioning.planner import PlanSettings, Request
from apps.provisioning.ratelimit import wait_for_slot
from apps.provisioning.selectors import manager_app_ids

logger = logging.getLogger(__name__)


# Connector id -> until when (time.monotonic()) this worker trusts its finding that the app holds no
# user the connector has not linked.
_none_unlinked_until: dict[str, float] = {}
NONE_UNLINKED_SECONDS = 5.0
# ... or this many times as long as the check took, if longer: the count of the connector's links
# grows with the directory (0.1 to 0.3 s at a million users) and pauses the other workers' creates,
# so it takes at most a fiftieth of a worker's time whatever the size (trusted for at most a minute).
NONE_UNLINKED_CHECK_RATIO = 50
NONE_UNLINKED_MAX_SECONDS = 60.0


def connector_client(connector: Connector, *, shared: bool = True) -> ScimClient:
    """The client of the connector's app: this worker's keep-alive one, or (`shared=False`) a new one
    that the caller closes, whose hooks no batch of the worker sees."""
    provisioning = connector.provisioning
    # Checked on every batch, resolving the name again: a URL saved while a setting allowed it, or
    # a name that now resolves to an internal address, is not contacted.
    try:
        check_outbound_url(provisioning.base_url)
    except OutboundURLError as exc:
        raise ScimError(f"The SCIM base URL is refused: {exc}") from exc
    try:
        token = decrypt_secret(provisioning.token_ciphertext)
    except SecretDecryptionError as exc:
        raise ScimError("The stored bearer token cannot be decrypted; set the token again.") from exc
    if not shared:
        return ScimClient(provisioning.base_url, token)
    return client_for(connector.pk, provisioning.base_url, token)


def plan_settings(connector: Connector) -> PlanSettings:
    """The settings the planner reads: the connector's provisioning row and its SCIM mappings (one query)."""
    rows = connector.mappings.filter(kind__in=[MappingKind.SCIM_USER, MappingKind.SCIM_GROUP])
    return PlanSettings.of(connector.provisioning, rows)


class ConnectorRun:
    """What reconciling one connector's objects needs, loaded once per batch."""

    def __init__(self, connector: Connector, client: ScimClient | None = None) -> None:
        self.connector = connector
        self.settings = connector.provisioning
        self.plan = plan_settings(connector)
        self.client = client or connector_client(connector)
        self.current_object: RemoteObject | None = None
        # When the task's time is up (time.monotonic()): a large group stops between two requests.
        self.deadline: float | None = None
        self.client.observer = self._record
        rate = self.settings.rate_limit_per_second
        self.client.before_request = (lambda: wait_for_slot(str(connector.pk), rate)) if rate else None
        # The hold waiting for an admin's decision, if any; approvals are read when the breaker asks.
        self.pending_hold: DeprovisionHold | None = (
            DeprovisionHold.objects.filter(connector=connector, status=HoldStatus.PENDING).order_by("-created").first()
        )
        # Written with the batch's outcomes (one transaction), not one row per request.
        self.deliveries: list[Delivery] = []
        # Users whose provisioning changed, by reason: their groups on this connector are re-sent.
        self.dirty_members: dict[str, set] = {}
        # Loaded once per batch by `preload`.
        self.users: dict[str, User] = {}
        self.in_scope: set[str] = set()
        self.group_names: dict[str, list[str]] = {}
        self.manager_app_ids: dict[str, str] = {}
        self._unlinked_remote_users: bool | None = None
        self.creates_lock = CreatesLock(connector)

    def send(self, request: Request) -> dict | None:
        """Send a planned request; returns the app's answer (the created or replaced resource)."""
        client, kind = self.client, request.resource_type
        if request.method == "POST":
            return client.create(kind, request.body)
        if request.method == "PUT":
            return client.replace(kind, request.remote_id, request.body)
        if request.method == "PATCH":
            return client.patch(kind, request.remote_id, request.body)
        client.delete(kind, request.remote_id)
        return None

    def app_has_unlinked_users(self) -> None:
        self._unlinked_remote_users = True
        _none_unlinked_until.pop(str(self.connector.pk), None)

    def _record(self, record: ResponseRecord) -> None:
        remote = self.current_object
        self.deliveries.append(
            Delivery(
                connector=self.connector,
                object_type=remote.object_type if remote else "",
                object_id=remote.object_id if remote else None,
                method=record.method,
                path=record.path[:1000],
                request_body=record.body,
                status_code=record.status,
                duration_ms=round(record.duration_ms, 2),
                error=record.error[:2000],
            )
        )

    def preload(self, claimed: list[RemoteObject]) -> None:
        """The claimed users, whether each is in scope, their group names and (when a mapping sends
        something of the manager) their managers and the managers' ids in the app: three to four
        queries a batch."""
        ids = [remote.object_id for remote in claimed if remote.object_type == ObjectType.USER]
        users = User.objects.select_related("manager") if self.plan.reads_manager else User.objects
        self.users = {str(user.pk): user for user in users.filter(pk__any=ids)} if ids else {}
        self.in_scope = {str(pk) for pk in users_in_scope_among(self.connector, ids)}
        self.manager_app_ids = (
            manager_app_ids(self.connector, self.users.values()) if self.plan.sends_manager_app_id else {}
        )
        self.group_names = {}
        if self.in_scope:
            for user_id, name in Membership.objects.filter(user_id__any=self.in_scope).values_list(
                "user_id", "group__name"
            ):
                self.group_names.setdefault(str(user_id), []).append(name)

    def app_may_hold_unlinked_users(self) -> bool:
        """Whether the app holds users that no directory user of this connector is linked to.

        Asked once per batch, before its first create: `GET /Users?count=1` against the users this
        connector has linked. When every user the app has is one of ours, a lookup by userName or
        externalId cannot find anything, so users are created straight away (a 409 still leads to
        the lookup). When the app holds others (existing accounts, a create whose answer was lost),
        each create is preceded by the lookups, which also covers apps that do not answer 409 for a
        duplicate userName. An app that cannot say how many users it has gets the lookups.

        A worker trusts its own finding for NONE_UNLINKED_SECONDS, or NONE_UNLINKED_CHECK_RATIO
        times as long as the check took (its creates are all linked, and a lost answer or a 409 ends
        the trust), so the count does not stall every batch.
        """
        trusted_until = _none_unlinked_until.get(str(self.connector.pk))
        if self._unlinked_remote_users is None and trusted_until and time.monotonic() < trusted_until:
            self._unlinked_remote_users = False
        if self._unlinked_remote_users is None:
            deletes = self.settings.deprovision == Deprovision.DELETE
            gone = frozenset({SyncStatus.DEPROVISIONED}) if deletes else frozenset()  # no longer in its total
            with user_creates_paused(self.connector) as paused:
                if not paused:
                    # Another worker's create could land between the two counts and pass for a
                    # user we do not know: look up first, which is always safe.
                    logger.info("%s: other creates kept running; looking up before creating", self.connector.slug)
                    self._unlinked_remote_users = True
                    return True
                # Counted before asking the app: every user linked by then is in the app's total,
                # so a total no larger than this count leaves no room for a user we do not know.
                began = time.monotonic()  # what the check costs, not the wait for other creates
                linked_before = linked_user_count(self.connector.pk, excluding=gone)
                try:
                    total = int(self.client.list_page("Users", start_index=1, count=1)["totalResults"])
                except ScimError as exc:
                    if exc.retryable:
                        raise  # a 429, a 5xx or a timeout: the object waits like any other request
                    self._unlinked_remote_users = True
                except (KeyError, TypeError, ValueError):
                    self._unlinked_remote_users = True
                else:
                    self._unlinked_remote_users = total > linked_before
                    if not self._unlinked_remote_users:
                        now = time.monotonic()
                        trust = min(max(NONE_UNLINKED_SECONDS, NONE_UNLINKED_CHECK_RATIO * (now - began)),
                                    NONE_UNLINKED_MAX_SECONDS)  # fmt: skip
                        _none_unlinked_until[str(self.connector.pk)] = now + trust
                    else:
                        _none_unlinked_until.pop(str(self.connector.pk), None)
                        logger.info(
                            "%s: the app has %s users, %s linked; looking up before creating",
                            self.connector.slug, total, linked_before,
                        )  # fmt: skip
        return self._unlinked_remote_users

    @functools.cached_property
    def approved_deprovisions(self) -> dict[str, Any]:
        """Object id -> when an admin approved deprovisioning it (the latest approval).

        Read only when the breaker is asked: every approved hold's ids (a large approval read on
        every batch would cost each batch as much, for as long as the hold is kept)."""
        approved: dict[str, Any] = {}
        holds = DeprovisionHold.objects.filter(connector=self.connector, status=HoldStatus.APPROVED)
        for hold in holds.only("object_ids", "decided_at"):
            for object_id in hold.object_ids:
                if object_id not in approved or approved[object_id] < hold.decided_at:
                    approved[object_id] = hold.decided_at
        return approved
