import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.connectors.models import Connector
from apps.directory.models import Group, User
from apps.provisioning.counts import INACTIVE, WAITING, link_counts
from apps.provisioning.models import (
    Delivery,
    DeprovisionHold,
    FullSyncRecording,
    HoldStatus,
    ObjectType,
    RemoteObject,
    SyncStatus,
)


@dataclass(frozen=True)
class ProvisioningState:
    """One state of a connector's provisioning and one count per concept, for every page that shows
    them (the Provisioning tab, its polled counts, the connector's header): nothing contradicts."""

    key: str  # off, paused, held, failing, syncing, up_to_date
    label: str
    detail: str
    in_app: int  # synced and active in the app
    deactivated: int  # told active=false, or deprovisioned
    waiting: int  # objects with something not yet sent (pending links, or unprocessed changes)
    failed: int
    held: int  # objects waiting on an approval
    not_sent: int  # skipped by the connector's switches
    objects: int = 0  # every object the connector links (each waiting object has its link row)
    queuing: int | None = None  # a full sync still being recorded: the objects recorded so far

    @property
    def syncing(self) -> bool:
        return self.key == "syncing"


def _pk(value: object) -> object:
    return Connector._meta.pk.to_python(value)


def provisioning_states(connectors: list[Connector]) -> dict:
    """Connector id -> its ProvisioningState, in five queries whatever the number of connectors (the
    dashboard, the connector list, the Provisioning tab and the connector's header all read these)."""
    ids = [connector.pk for connector in connectors]
    counts: dict = {pk: {} for pk in ids}
    deactivated: dict = {}
    waiting: dict = {}
    # Links per status (synced ones told active=false apart, and those with changes waiting), from
    # a counter the database keeps in every writing transaction: no COUNT of a million links, nor a
    # DISTINCT over the pending outbox, on each poll of the console.
    for pk, parts in link_counts(ids).items():
        for (status, flags), count in parts.items():
            counts[pk][status] = counts[pk].get(status, 0) + count
            if INACTIVE in flags:
                deactivated[pk] = deactivated.get(pk, 0) + count
            if status == SyncStatus.PENDING or WAITING in flags:
                waiting[pk] = waiting.get(pk, 0) + count
    holds = dict(
        DeprovisionHold.objects.filter(connector_id__in=ids, status=HoldStatus.PENDING)
        .values_list("connector_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    queuing = dict(FullSyncRecording.objects.filter(connector_id__in=ids).values_list("connector_id", "recorded"))
    return {
        connector.pk: _state(
            connector,
            counts[connector.pk],
            deactivated=deactivated.get(connector.pk, 0),
            waiting=waiting.get(connector.pk, 0),
            holds=holds.get(connector.pk, 0),
            queuing=queuing.get(connector.pk),
        )
        for connector in connectors
    }


def full_sync_still_queuing(connector: Connector) -> bool:
    """A full sync too large for one transaction is still being recorded in the background."""
    return FullSyncRecording.objects.filter(connector=connector).exists()


def provisioning_state(connector: Connector) -> ProvisioningState:
    return provisioning_states([connector])[connector.pk]


def _state(
    connector: Connector, counts: dict, *, deactivated: int, waiting: int, holds: int, queuing: int | None = None
) -> ProvisioningState:
    settings = connector.provisioning
    failed = counts.get(SyncStatus.FAILED, 0)
    facts = {
        "in_app": counts.get(SyncStatus.SYNCED, 0) - deactivated,
        "deactivated": deactivated + counts.get(SyncStatus.DEPROVISIONED, 0),
        "waiting": waiting,
        "failed": failed,
        "held": counts.get(SyncStatus.HELD, 0),
        "not_sent": counts.get(SyncStatus.SKIPPED, 0),
        "objects": sum(counts.values()),
        "queuing": queuing,
    }
    if not (connector.enabled and settings.enabled):
        why = "the connector is not active" if not connector.enabled else "Identity Management is off"
        return ProvisioningState("off", "Off", f"Nothing is sent: {why}.", **facts)
    if settings.paused:
        later = f" {waiting} change{'s' if waiting != 1 else ''} will be sent when it resumes." if waiting else ""
        reason = f" ({settings.paused_reason})" if settings.paused_reason else ""
        return ProvisioningState("paused", "Paused", f"Nothing is sent while paused{reason}.{later}", **facts)
    if holds:
        return ProvisioningState(
            "held", "Waiting for approval", "A deprovisioning of many users waits for an admin's decision.", **facts
        )
    to_send = f"{waiting} object{'s' if waiting != 1 else ''} to send"
    if queuing is not None:
        # The counts grow as the recording goes on: say so, or the totals look final.
        return ProvisioningState(
            "syncing", "Syncing", f"{to_send}; a full sync is still being queued ({queuing:,} so far).", **facts
        )
    if waiting:
        return ProvisioningState("syncing", "Syncing", f"{to_send}.", **facts)
    if failed:
        return ProvisioningState("failing", "Failures", f"{failed} object{'s' if failed != 1 else ''} failed.", **facts)
    return ProvisioningState("up_to_date", "Up to date", "The app has everything the directory says.", **facts)


# The rate of a sync is what it settled over this many seconds.
RATE_WINDOW_SECONDS = 30


@dataclass(frozen=True)
class SyncProgress:
    """How far a sync is: objects up to date of all the connector has or waits for, the rate over
    the last RATE_WINDOW_SECONDS and the time left at that rate (None while nothing moves, or while
    a full sync is still being queued and the total grows)."""

    done: int
    total: int
    per_second: float
    seconds_left: float | None
    queuing: bool = False  # a full sync is still being recorded: the total is not final

    @property
    def pace(self) -> str:
        """The rate and the time left, in words."""
        more = " More objects are still being queued." if self.queuing else ""
        if not self.per_second:
            return "Waiting for the first objects to be sent." + more
        text = f"{self.per_second:,.0f} per second"
        if self.seconds_left is not None:
            text += f", about {_duration(self.seconds_left)} left"
        return text + "." + more

    @property
    def summary(self) -> str:
        return f"{self.done:,} of {self.total:,} up to date; {self.pace}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sync_progress(connector: Connector, state: ProvisioningState | None = None) -> SyncProgress:
    """The progress of the connector's sync, from its ProvisioningState and one indexed count of the
    objects settled in the last RATE_WINDOW_SECONDS (a few thousand rows at most, whatever the size
    of the directory); the rate is read only while something waits."""
    state = state or provisioning_state(connector)
    # An object synced before and changed since is both in the app and waiting: count links, once.
    total = max(state.objects, state.waiting)
    done = total - state.waiting
    per_second, left = 0.0, None
    if state.waiting:
        since = timezone.now() - timedelta(seconds=RATE_WINDOW_SECONDS)
        settled = RemoteObject.objects.filter(connector=connector, last_synced_at__gte=since).count()
        per_second = settled / RATE_WINDOW_SECONDS
        left = state.waiting / per_second if per_second else None
    queuing = state.queuing is not None
    return SyncProgress(done, total, per_second, None if queuing else left, queuing)


def with_names(remotes: list[RemoteObject]) -> list[RemoteObject]:
    """Fill the label of links made before the object was first sent (their name is not copied yet):
    one query for users and one for groups, never an id where a person expects a name."""
    missing = {kind: [remote.object_id for remote in remotes if not remote.label and remote.object_type == kind]
               for kind in (ObjectType.USER, ObjectType.GROUP)}  # fmt: skip
    names: dict = {}
    if missing[ObjectType.USER]:
        names.update(User.objects.filter(pk__in=missing[ObjectType.USER]).values_list("pk", "username"))
    if missing[ObjectType.GROUP]:
        names.update(Group.objects.filter(pk__in=missing[ObjectType.GROUP]).values_list("pk", "name"))
    for remote in remotes:
        if not remote.label:
            remote.label = names.get(remote.object_id, "(deleted from the directory)")
    return remotes


_DEACTIVATED = Q(status=SyncStatus.SYNCED, last_sent__active=False) | Q(status=SyncStatus.DEPROVISIONED)
# The concepts ProvisioningState counts, as filters of the list (a count and its list always agree).
_STATE_FILTERS = {
    "in_app": lambda connector: Q(status=SyncStatus.SYNCED) & ~Q(last_sent__active=False),
    "deactivated": lambda connector: _DEACTIVATED,
    # Pending, or with unprocessed outbox events (counted on the link: apps.provisioning.waiting).
    "waiting": lambda connector: Q(status=SyncStatus.PENDING) | Q(waiting_events__gt=0),
}


def remote_object_list(
    connector: Connector, *, status: str | None = None, object_type: str | None = None
) -> QuerySet[RemoteObject]:
    objects = RemoteObject.objects.filter(connector=connector)
    if status:
        objects = objects.filter(_STATE_FILTERS[status](connector) if status in _STATE_FILTERS else Q(status=status))
    if object_type:
        objects = objects.filter(object_type=object_type)
    return objects.order_by("object_type", "label")


def delivery_list(connector: Connector) -> QuerySet[Delivery]:
    return Delivery.objects.filter(connector=connector).order_by("-created", "-id")


def hold_list(connector: Connector) -> QuerySet[DeprovisionHold]:
    return DeprovisionHold.objects.filter(connector=connector).order_by("-created")


def pending_hold_list(connector: Connector) -> QuerySet[DeprovisionHold]:
    return hold_list(connector).filter(status=HoldStatus.PENDING)


_STATUS_HINTS = {
    400: "The app refused the data it was sent; check the attribute mapping.",
    401: "The app refused the bearer token; set the token again from the app.",
    403: "The app refused the bearer token or this operation; check the token's permissions in the app.",
    404: "The app no longer has this object, or the SCIM base URL is wrong.",
    409: "The app already has an account or group with this name and did not let the portal take it over.",
    413: "The request was too large for the app.",
    429: "The app asked the portal to slow down; it retries by itself.",
    500: "The app had an internal error; the portal retries by itself.",
    501: "The app does not support this operation; turn it off in Identity Management.",
    502: "The app (or a proxy in front of it) was unavailable; the portal retries by itself.",
    503: "The app was unavailable; the portal retries by itself.",
    504: "The app took too long to answer; the portal retries by itself.",
}


def explain_error(error: str) -> str:
    """A plain-words hint for a recorded delivery error ("The app answered HTTP 409: ..."), or ""."""
    match = re.search(r"HTTP (\d{3})", error or "")
    if match:
        return _STATUS_HINTS.get(int(match.group(1)), "")
    if error.startswith("Could not reach the app"):
        return "The portal could not connect to the app: check the SCIM base URL and that the app is up."
    return ""


def manager_app_ids(connector: Connector, users: Iterable[User]) -> dict[str, str]:
    """User id -> the id their manager has in the connector's app, for those whose manager is linked
    there and not deprovisioned (one query; none when no user has a manager)."""
    manager_of = {str(user.pk): str(user.manager_id) for user in users if getattr(user, "manager_id", None)}
    if not manager_of:
        return {}
    linked = dict(
        RemoteObject.objects.filter(
            connector=connector, object_type=ObjectType.USER, object_id__in=set(manager_of.values())
        )
        .exclude(remote_id="")
        .exclude(status=SyncStatus.DEPROVISIONED)
        .values_list("object_id", "remote_id")
    )
    linked = {str(object_id): remote_id for object_id, remote_id in linked.items()}
    return {user_id: linked[manager_id] for user_id, manager_id in manager_of.items() if manager_id in linked}
