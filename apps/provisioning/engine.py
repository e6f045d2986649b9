"""Push a connector's pending changes downstream: claim objects, reconcile each, record the outcome.

Level-triggered: for every object with unprocessed outbox events the engine computes what the app
should hold now and sends the difference from what it last sent. Several quick changes collapse into
one delivery, a delayed retry can never send an older state, and running twice sends nothing more.
"""

import contextlib
import logging
import math
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from apps.common.crypto import SecretDecryptionError, decrypt_secret
from apps.common.http import OutboundURLError, check_outbound_url
from apps.connectors.models import (
    Assignment,
    Connector,
    Deprovision,
    MappingKind,
    ProvisioningOperation,
    UpdateMethod,
)
from apps.connectors.selectors import users_in_scope
from apps.directory.models import Group, Membership, User, UserStatus
from apps.provisioning import mapping
from apps.provisioning.client import (
    ConflictError,
    RateLimitedError,
    RemoteNotFoundError,
    ResponseRecord,
    ScimClient,
    ScimError,
    client_for,
)
from apps.provisioning.models import (
    Delivery,
    DeprovisionHold,
    HoldStatus,
    ObjectType,
    OutboxEvent,
    RemoteObject,
    SyncStatus,
)
from apps.provisioning.ratelimit import wait_for_slot

logger = logging.getLogger(__name__)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
BATCH_SIZE = 100


class Deferred(Exception):
    """The object cannot be handled yet (its lease is held elsewhere, or it waits for approval)."""


@dataclass
class BatchResult:
    claimed: int = 0
    synced: int = 0
    failed: int = 0
    retrying: int = 0
    next_retry_in: float | None = None
    more: bool = False
    held: bool = False


# --- Claiming ---------------------------------------------------------------------------------


def _lease_seconds() -> int:
    return settings.PROVISIONING_LEASE_SECONDS


def _pending_objects(connector: Connector):
    """RemoteObjects with unprocessed events, due now, not leased: users first (groups need their ids)."""
    now = timezone.now()
    pending_ids = OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).values("object_id")
    return (
        RemoteObject.objects.filter(connector=connector, object_id__in=pending_ids)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("-object_type", "updated")  # "user" sorts after "group": descending puts users first
    )


def claim_batch(connector: Connector, limit: int = BATCH_SIZE) -> list[RemoteObject]:
    """Lease up to `limit` due objects for this worker; a conditional UPDATE makes claims exclusive."""
    now = timezone.now()
    claimed = []
    for candidate in _pending_objects(connector)[: limit * 2]:
        updated = (
            RemoteObject.objects.filter(pk=candidate.pk)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
            .update(lease_owner=WORKER_ID, lease_expires_at=now + timedelta(seconds=_lease_seconds()))
        )
        if updated:
            candidate.lease_owner = WORKER_ID
            claimed.append(candidate)
        if len(claimed) >= limit:
            break
    return claimed


def release(remote: RemoteObject) -> None:
    RemoteObject.objects.filter(pk=remote.pk, lease_owner=WORKER_ID).update(lease_owner="", lease_expires_at=None)


# --- Context for one connector ----------------------------------------------------------------


class ConnectorRun:
    """What reconciling one connector's objects needs, loaded once per batch."""

    def __init__(self, connector: Connector, client: ScimClient | None = None) -> None:
        self.connector = connector
        self.settings = connector.provisioning
        self.operations = set(self.settings.operations)
        self.user_mappings = mapping.mapping_pairs(connector.mappings.filter(kind=MappingKind.SCIM_USER))
        self.group_mappings = mapping.mapping_pairs(connector.mappings.filter(kind=MappingKind.SCIM_GROUP))
        self.client = client or self._client()
        self.current_object: RemoteObject | None = None
        self.client.observer = self._record
        rate = self.settings.rate_limit_per_second
        self.client.before_request = (lambda: wait_for_slot(str(connector.pk), rate)) if rate else None
        self.approved_deprovisions = self._approved_deprovisions()

    def _client(self) -> ScimClient:
        # Checked on every batch, resolving the name again: a URL saved while a setting allowed it, or
        # a name that now resolves to an internal address, is not contacted.
        try:
            check_outbound_url(self.settings.base_url)
        except OutboundURLError as exc:
            raise ScimError(f"The SCIM base URL is refused: {exc}") from exc
        try:
            token = decrypt_secret(self.settings.token_ciphertext)
        except SecretDecryptionError as exc:
            raise ScimError("The stored bearer token cannot be decrypted; set the token again.") from exc
        return client_for(self.connector.pk, self.settings.base_url, token)

    def _record(self, record: ResponseRecord) -> None:
        remote = self.current_object
        Delivery.objects.create(
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

    def _approved_deprovisions(self) -> dict[str, Any]:
        """Object id -> when an admin approved deprovisioning it (the latest approval)."""
        approved: dict[str, Any] = {}
        for hold in DeprovisionHold.objects.filter(connector=self.connector, status=HoldStatus.APPROVED):
            for object_id in hold.object_ids:
                if object_id not in approved or approved[object_id] < hold.decided_at:
                    approved[object_id] = hold.decided_at
        return approved


# --- Users ------------------------------------------------------------------------------------


def _user_group_names(user: User) -> list[str]:
    return list(Group.objects.filter(memberships__user=user).values_list("name", flat=True))


def _find_remote_user(run: ConnectorRun, resource: dict) -> dict | None:
    """An existing remote user for this resource: by userName, then by externalId."""
    for attribute, value in (
        ("userName", mapping.user_name_of(resource)),
        ("externalId", mapping.external_id_of(resource)),
    ):
        if not value:
            continue
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        found = run.client.search("Users", f'{attribute} eq "{quoted}"')
        if found:
            return found[0]
    return None


def _mark_groups_dirty_for_member(run: ConnectorRun, user_id: Any, reason: str) -> None:
    """A member became (un)provisioned: the connector's groups that include it must be re-sent.

    Groups a user left, or was deleted from, were recorded by the directory change itself.
    """
    group_ids = set(
        Membership.objects.filter(user_id=user_id, group__connector_assignments__connector=run.connector).values_list(
            "group_id", flat=True
        )
    )
    if group_ids:
        from apps.provisioning.services import record_events

        record_events(run.connector, ObjectType.GROUP, group_ids, reason)


def _sync_user(run: ConnectorRun, remote: RemoteObject, user: User) -> None:
    resource = mapping.build_user_resource(mapping.user_properties(user, _user_group_names(user)), run.user_mappings)
    digest = mapping.resource_hash(resource)
    remote.label = user.username
    if not remote.remote_id or (
        remote.status == SyncStatus.DEPROVISIONED and run.settings.deprovision == Deprovision.DELETE
    ):
        if ProvisioningOperation.CREATE_USERS not in run.operations:
            _finish(remote, SyncStatus.SKIPPED, "Creating users is turned off for this connector.")
            return
        existing = _find_remote_user(run, resource)
        if existing is None:
            try:
                created = run.client.create("Users", resource)
            except ConflictError:
                # The create may have succeeded with its answer lost: link what is there.
                existing = _find_remote_user(run, resource)
                if existing is None:
                    raise
            else:
                remote.remote_id = str(created.get("id", ""))
                if not remote.remote_id:
                    raise ScimError("The app created the user but returned no id.")
                _sent(remote, resource, digest)
                _mark_groups_dirty_for_member(run, user.pk, "member.provisioned")
                return
        remote.remote_id = str(existing["id"])
        # What the app holds of the attributes we manage: the update below sends only their difference,
        # never a removal of id, meta or attributes the connector does not map.
        remote.last_sent = {key: existing[key] for key in resource if key in existing}
        remote.last_sent_hash = ""
        _mark_groups_dirty_for_member(run, user.pk, "member.linked")
    if digest == remote.last_sent_hash:
        _finish(remote, SyncStatus.SYNCED)
        return
    only_active_changed = mapping.changed_attributes(remote.last_sent, resource) == ["active"]
    allowed = ProvisioningOperation.UPDATE_USERS in run.operations or (
        only_active_changed and ProvisioningOperation.DEACTIVATE_USERS in run.operations
    )
    if not allowed:
        _finish(remote, SyncStatus.SKIPPED, "Updating users is turned off for this connector.")
        return
    try:
        if run.settings.update_method == UpdateMethod.PUT:
            run.client.replace("Users", remote.remote_id, resource)
        else:
            operations = mapping.patch_operations(remote.last_sent, resource)
            if operations:
                run.client.patch("Users", remote.remote_id, mapping.patch_request(operations))
    except RemoteNotFoundError:
        # Someone deleted it in the app: create it again on the next pass.
        remote.remote_id, remote.last_sent, remote.last_sent_hash = "", None, ""
        raise
    _sent(remote, resource, digest)


def _deprovision_user(run: ConnectorRun, remote: RemoteObject, *, deleted: bool) -> None:
    if not remote.remote_id or remote.status == SyncStatus.DEPROVISIONED:
        _finish(remote, SyncStatus.DEPROVISIONED if remote.remote_id else SyncStatus.SKIPPED)
        return
    use_delete = run.settings.deprovision == Deprovision.DELETE
    operation = ProvisioningOperation.DELETE_USERS if use_delete else ProvisioningOperation.DEACTIVATE_USERS
    if operation not in run.operations:
        _finish(remote, SyncStatus.SKIPPED, f"{operation.label} is turned off for this connector.")
        return
    try:
        if use_delete:
            run.client.delete("Users", remote.remote_id)
        elif run.settings.update_method == UpdateMethod.PUT and remote.last_sent:
            run.client.replace("Users", remote.remote_id, {**remote.last_sent, "active": False})
        else:
            run.client.patch(
                "Users",
                remote.remote_id,
                mapping.patch_request([{"op": "replace", "path": "active", "value": False}]),
            )
    except RemoteNotFoundError:
        pass  # already gone: the goal is reached
    if use_delete:
        remote.last_sent, remote.last_sent_hash = None, ""
    elif remote.last_sent:
        remote.last_sent = {**remote.last_sent, "active": False}
        remote.last_sent_hash = mapping.resource_hash(remote.last_sent)
    _finish(remote, SyncStatus.DEPROVISIONED)
    _mark_groups_dirty_for_member(run, remote.object_id, "member.deprovisioned")


def reconcile_user(run: ConnectorRun, remote: RemoteObject) -> None:
    user = User.objects.filter(pk=remote.object_id).first()
    in_scope = user is not None and users_in_scope(run.connector).filter(pk=user.pk).exists()
    if in_scope:
        if remote.status == SyncStatus.DEPROVISIONED and run.settings.deprovision == Deprovision.DELETE:
            remote.remote_id = ""
        _sync_user(run, remote, user)
    else:
        _deprovision_user(run, remote, deleted=user is None)


# --- Groups -----------------------------------------------------------------------------------


def reconcile_group(run: ConnectorRun, remote: RemoteObject) -> None:
    group = Group.objects.filter(pk=remote.object_id).first()
    assigned = group is not None and Assignment.objects.filter(connector=run.connector, group=group).exists()
    if ProvisioningOperation.PUSH_GROUPS not in run.operations:
        _finish(remote, SyncStatus.SKIPPED, "Pushing groups is turned off for this connector.")
        return
    if not assigned:
        if remote.remote_id:
            with contextlib.suppress(RemoteNotFoundError):
                run.client.delete("Groups", remote.remote_id)
            remote.remote_id, remote.remote_members, remote.last_sent, remote.last_sent_hash = "", [], None, ""
            _finish(remote, SyncStatus.DEPROVISIONED)
        else:
            _finish(remote, SyncStatus.SKIPPED)
        return

    remote.label = group.name
    member_ids = {str(pk) for pk in Membership.objects.filter(group=group).values_list("user_id", flat=True)}
    provisioned = dict(
        RemoteObject.objects.filter(
            connector=run.connector,
            object_type=ObjectType.USER,
            object_id__in=member_ids,
            status=SyncStatus.SYNCED,
        )
        .exclude(remote_id="")
        .values_list("object_id", "remote_id")
    )
    desired = {str(object_id): remote_id for object_id, remote_id in provisioned.items()}
    resource = mapping.build_group_resource(mapping.group_properties(group), run.group_mappings, [])

    if not remote.remote_id:
        if not desired:
            _finish(remote, SyncStatus.SKIPPED, "Empty groups are not created in the app.")
            return
        quoted = group.name.replace("\\", "\\\\").replace('"', '\\"')
        existing = run.client.search("Groups", f'displayName eq "{quoted}"')
        if existing:
            adopted = existing[0]
            remote.remote_id = str(adopted["id"])
            by_remote = {remote_id: object_id for object_id, remote_id in desired.items()}
            remote.remote_members = [
                by_remote[m["value"]] for m in adopted.get("members") or [] if m.get("value") in by_remote
            ]
            remote.last_sent = {key: adopted.get(key) for key in resource if key != "schemas"}
        else:
            payload = {**resource, "members": [{"value": rid} for rid in sorted(desired.values())]}
            try:
                created = run.client.create("Groups", payload)
            except ConflictError:
                existing = run.client.search("Groups", f'displayName eq "{quoted}"')
                if not existing:
                    raise
                created = existing[0]
                remote.remote_id = str(created["id"])
                remote.remote_members = []
            else:
                remote.remote_id = str(created.get("id", ""))
                remote.remote_members = sorted(desired)
                remote.last_sent = resource
                remote.last_sent_hash = mapping.resource_hash(resource)
                _finish(remote, SyncStatus.SYNCED)
                return

    operations = (
        mapping.patch_operations(remote.last_sent, resource)
        if remote.last_sent_hash != mapping.resource_hash(resource)
        else []
    )
    operations = [op for op in operations if op["path"] != "members"]
    present = set(remote.remote_members)
    added = set(desired) - present
    removed = present - set(desired)
    # Members that left are removed by the remote id recorded when they were provisioned.
    removed_remote_ids = dict(
        RemoteObject.objects.filter(connector=run.connector, object_type=ObjectType.USER, object_id__in=removed)
        .exclude(remote_id="")
        .values_list("object_id", "remote_id")
    )
    operations += mapping.member_operations(
        [desired[object_id] for object_id in added], [removed_remote_ids[k] for k in removed_remote_ids]
    )
    if operations:
        try:
            if run.settings.update_method == UpdateMethod.PUT:
                members = [{"value": remote_id} for remote_id in sorted(desired.values())]
                run.client.replace("Groups", remote.remote_id, {**resource, "members": members})
            else:
                run.client.patch("Groups", remote.remote_id, mapping.patch_request(operations))
        except RemoteNotFoundError:
            remote.remote_id, remote.remote_members, remote.last_sent, remote.last_sent_hash = "", [], None, ""
            raise
    remote.remote_members = sorted(desired)
    remote.last_sent = resource
    remote.last_sent_hash = mapping.resource_hash(resource)
    _finish(remote, SyncStatus.SYNCED)


# --- Outcomes -----------------------------------------------------------------------------------


def _sent(remote: RemoteObject, resource: dict, digest: str) -> None:
    remote.last_sent = resource
    remote.last_sent_hash = digest
    _finish(remote, SyncStatus.SYNCED)


def _finish(remote: RemoteObject, status: str, note: str = "") -> None:
    remote.status = status
    remote.last_error = note
    remote.attempts = 0
    remote.next_attempt_at = None
    remote.last_synced_at = timezone.now()


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter, capped."""
    base = settings.PROVISIONING_RETRY_BASE_SECONDS
    cap = settings.PROVISIONING_RETRY_MAX_SECONDS
    return random.uniform(base, min(cap, base * (2 ** min(attempts, 20))))


def _save_outcome(remote: RemoteObject, high_water: int | None) -> None:
    fields = [
        "label", "remote_id", "status", "last_sent", "last_sent_hash", "remote_members", "last_error",
        "attempts", "next_attempt_at", "last_synced_at", "lease_owner", "lease_expires_at", "updated",
    ]  # fmt: skip
    remote.lease_owner, remote.lease_expires_at = "", None
    with transaction.atomic():
        remote.save(update_fields=fields)
        if high_water is not None:
            OutboxEvent.objects.filter(
                connector_id=remote.connector_id,
                object_type=remote.object_type,
                object_id=remote.object_id,
                processed_at__isnull=True,
                id__lte=high_water,
            ).update(processed_at=timezone.now())


def process_object(run: ConnectorRun, remote: RemoteObject) -> str:
    """Reconcile one claimed object; returns "synced", "failed", "retry" or "rate_limited"."""
    high_water = OutboxEvent.objects.filter(
        connector=run.connector, object_type=remote.object_type, object_id=remote.object_id, processed_at__isnull=True
    ).aggregate(top=Max("id"))["top"]
    run.current_object = remote
    try:
        if remote.object_type == ObjectType.USER:
            reconcile_user(run, remote)
        else:
            reconcile_group(run, remote)
    except mapping.MappingFailure as exc:
        _fail(remote, f"Mapping error: {exc}")
        _save_outcome(remote, high_water)
        return "failed"
    except ScimError as exc:
        if exc.retryable and remote.attempts + 1 < settings.PROVISIONING_MAX_ATTEMPTS:
            delay = backoff_seconds(remote.attempts)
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                delay = max(exc.retry_after, 0.5)
            remote.attempts += 1
            remote.status = SyncStatus.PENDING  # the app is behind the directory until the retry succeeds
            remote.last_error = exc.message
            remote.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            _save_outcome(remote, None)  # events stay pending: the retry sends the then-current state
            return "rate_limited" if isinstance(exc, RateLimitedError) else "retry"
        reason = exc.message if not exc.retryable else f"Gave up after {remote.attempts + 1} attempts: {exc.message}"
        _fail(remote, reason)
        _save_outcome(remote, high_water)
        return "failed"
    finally:
        run.current_object = None
    _save_outcome(remote, high_water)
    return "synced"


def _fail(remote: RemoteObject, reason: str) -> None:
    remote.status = SyncStatus.FAILED
    remote.last_error = reason[:2000]
    remote.next_attempt_at = None
    remote.attempts += 1


def _defer_pending(connector: Connector, until: Any) -> None:
    """Move every due object of the connector to `until` (a 429 applies to the whole app)."""
    RemoteObject.objects.filter(connector=connector).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=until)
    ).filter(
        object_id__in=OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).values("object_id")
    ).update(next_attempt_at=until)


# --- The circuit breaker --------------------------------------------------------------------------


def pending_deprovisions(connector: Connector) -> list[RemoteObject]:
    """Linked users with pending changes who would be deactivated or deleted now."""
    pending_ids = OutboxEvent.objects.filter(
        connector=connector, object_type=ObjectType.USER, processed_at__isnull=True
    ).values("object_id")
    linked = list(
        RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER, object_id__in=pending_ids)
        .exclude(remote_id="")
        .exclude(status=SyncStatus.DEPROVISIONED)
    )
    if not linked:
        return []
    ids = [remote.object_id for remote in linked]
    in_scope = dict(users_in_scope(connector).filter(pk__in=ids).values_list("pk", "status"))
    losing = []
    for remote in linked:
        status = in_scope.get(remote.object_id)
        if status == UserStatus.ACTIVE:
            continue
        if status is not None and not (remote.last_sent or {}).get("active", True):
            continue  # already inactive in the app: nothing new would be deactivated
        losing.append(remote)
    return losing


def deprovision_threshold(connector: Connector) -> int:
    provisioning = connector.provisioning
    linked_users = (
        RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER).exclude(remote_id="").count()
    )
    by_percent = math.ceil(linked_users * provisioning.deprovision_threshold_percent / 100)
    return max(provisioning.deprovision_threshold_count, by_percent)


def _covered_by_approval(remotes: list[RemoteObject], approved: dict[str, Any]) -> set[str]:
    """Objects whose pending changes all predate their approval: the batch the admin approved.

    A later change (the same users removed again a month on) is a new batch and trips the breaker again.
    """
    candidates = [remote.object_id for remote in remotes if str(remote.object_id) in approved]
    if not candidates:
        return set()
    latest = dict(
        OutboxEvent.objects.filter(object_id__in=candidates, processed_at__isnull=True, object_type=ObjectType.USER)
        .filter(connector_id=remotes[0].connector_id)
        .values("object_id")
        .annotate(last=Max("created"))
        .values_list("object_id", "last")
    )
    return {
        str(object_id)
        for object_id in candidates
        if latest.get(object_id) is not None and latest[object_id] <= approved[str(object_id)]
    }


def check_circuit_breaker(connector: Connector, approved: dict[str, Any]) -> DeprovisionHold | None:
    """Pause the connector and open a hold when too many users would lose access at once."""
    if DeprovisionHold.objects.filter(connector=connector, status=HoldStatus.PENDING).exists():
        return DeprovisionHold.objects.filter(connector=connector, status=HoldStatus.PENDING).first()
    candidates = pending_deprovisions(connector)
    covered = _covered_by_approval(candidates, approved)
    losing = [remote for remote in candidates if str(remote.object_id) not in covered]
    threshold = deprovision_threshold(connector)
    if len(losing) <= threshold:
        return None
    from apps.provisioning.services import hold_open

    return hold_open(connector=connector, remotes=losing, threshold=threshold)


# --- One pass over a connector ------------------------------------------------------------------


def process_batch(connector_id: Any, *, deadline: float, limit: int = BATCH_SIZE) -> BatchResult:
    result = BatchResult()
    connector = Connector.objects.select_related("provisioning").filter(pk=connector_id).first()
    if connector is None or not connector.has_provisioning:
        return result
    provisioning = connector.provisioning
    if not (connector.enabled and provisioning.enabled) or provisioning.paused:
        return result
    try:
        run = ConnectorRun(connector)
    except ScimError as exc:
        logger.warning("connector %s cannot be provisioned: %s", connector.slug, exc.message)
        return result
    if check_circuit_breaker(connector, run.approved_deprovisions) is not None:
        result.held = True
        return result
    claimed = claim_batch(connector, limit)
    result.claimed = len(claimed)
    result.more = len(claimed) >= limit
    backing_off = False
    for remote in claimed:
        if backing_off or time.monotonic() > deadline:
            # The app asked us to slow down: the rest of the batch waits instead of collecting 429s.
            release(remote)
            result.more = result.more or not backing_off
            continue
        outcome = process_object(run, remote)
        if outcome == "synced":
            result.synced += 1
        elif outcome == "failed":
            result.failed += 1
        else:
            result.retrying += 1
            delay = (remote.next_attempt_at - timezone.now()).total_seconds()
            result.next_retry_in = delay if result.next_retry_in is None else min(result.next_retry_in, delay)
            if outcome == "rate_limited":
                backing_off = True
                _defer_pending(connector, remote.next_attempt_at)
    return result


def process_connector(connector_id: Any, *, budget_seconds: float | None = None) -> BatchResult:
    """Work through the connector's pending objects for at most `budget_seconds`."""
    budget = budget_seconds if budget_seconds is not None else settings.PROVISIONING_TASK_BUDGET_SECONDS
    deadline = time.monotonic() + budget
    total = BatchResult()
    while True:
        batch = process_batch(connector_id, deadline=deadline)
        total.claimed += batch.claimed
        total.synced += batch.synced
        total.failed += batch.failed
        total.retrying += batch.retrying
        total.held = total.held or batch.held
        if batch.next_retry_in is not None:
            total.next_retry_in = (
                batch.next_retry_in if total.next_retry_in is None else min(total.next_retry_in, batch.next_retry_in)
            )
        if batch.claimed == 0 or batch.held:
            total.more = False
            return total
        if time.monotonic() > deadline:
            total.more = True
            return total


# --- Full reconcile: users the app has that the directory does not manage ------------------------

REMOTE_PAGE_SIZE = 100


def unmanaged_remote_users(connector: Connector, client: ScimClient) -> list[dict]:
    """Users the app has that no in-scope directory user is, or will be, linked to."""
    linked = set(
        RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER)
        .exclude(remote_id="")
        .values_list("remote_id", flat=True)
    )
    in_scope_names = {name.lower() for name in users_in_scope(connector).values_list("username", flat=True)}
    unmanaged = []
    start = 1
    while True:
        page = client.list_page("Users", start_index=start, count=REMOTE_PAGE_SIZE)
        resources = page.get("Resources") or []
        for resource in resources:
            remote_id = str(resource.get("id", ""))
            if not remote_id or remote_id in linked:
                continue
            if str(resource.get("userName", "")).lower() in in_scope_names:
                continue  # the next pass links it instead of creating a duplicate
            if resource.get("active") is False and connector.provisioning.deprovision == Deprovision.DEACTIVATE:
                continue
            unmanaged.append({"id": remote_id, "userName": str(resource.get("userName", ""))})
        total = int(page.get("totalResults") or 0)
        start += len(resources)
        if not resources or start > total:
            return unmanaged


def deprovision_remote_ids(run: ConnectorRun, remote_ids: list[str]) -> int:
    done = 0
    for remote_id in remote_ids:
        try:
            if run.settings.deprovision == Deprovision.DELETE:
                run.client.delete("Users", remote_id)
            else:
                run.client.patch(
                    "Users", remote_id, mapping.patch_request([{"op": "replace", "path": "active", "value": False}])
                )
            done += 1
        except RemoteNotFoundError:
            done += 1
    return done


def reconcile_unmanaged(connector_id: Any) -> int:
    """Deprovision users the app has but should not, if the connector allows it; returns how many."""
    connector = Connector.objects.select_related("provisioning").filter(pk=connector_id).first()
    if connector is None or not connector.has_provisioning or not connector.provisioning.deprovision_unmanaged:
        return 0
    if connector.provisioning.paused or not (connector.enabled and connector.provisioning.enabled):
        return 0
    run = ConnectorRun(connector)
    unmanaged = unmanaged_remote_users(connector, run.client)
    if not unmanaged:
        return 0
    threshold = deprovision_threshold(connector)
    if len(unmanaged) > threshold:
        from apps.provisioning.services import hold_open_remote

        hold_open_remote(connector=connector, remote_users=unmanaged, threshold=threshold)
        return 0
    return deprovision_remote_ids(run, [user["id"] for user in unmanaged])
