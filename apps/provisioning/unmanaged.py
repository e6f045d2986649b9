"""Users the app has that the directory does not manage: found by a full sync and deprovisioned when
the connector allows it (through a hold above the circuit breaker's threshold).
"""

import contextlib
from typing import Any

from apps.connectors.models import Connector
from apps.connectors.selectors import users_in_scope
from apps.provisioning.breaker import deprovision_threshold, hold_open_remote
from apps.provisioning.client import RemoteNotFoundError, ScimClient
from apps.provisioning.models import DeprovisionHold, HoldStatus, ObjectType, RemoteObject
from apps.provisioning.outcomes import flush
from apps.provisioning.planner import PlanSettings, plan_unmanaged_user, unmanaged_deprovision
from apps.provisioning.run import ConnectorRun

REMOTE_PAGE_SIZE = 100


def unmanaged_remote_users(connector: Connector, client: ScimClient, settings: PlanSettings) -> list[dict]:
    """Users the app has that the connector deprovisions: no in-scope directory user is, or will be,
    linked to them (see `planner.plan_unmanaged_user`). Each as {"id", "userName"}."""
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
            if plan_unmanaged_user(resource, settings, linked_remote_ids=linked, in_scope_names=in_scope_names):
                unmanaged.append({"id": str(resource["id"]), "userName": str(resource.get("userName", ""))})
        total = int(page.get("totalResults") or 0)
        start += len(resources)
        if not resources or start > total:
            return unmanaged


def deprovision_remote_ids(run: ConnectorRun, remote_ids: list[str]) -> int:
    done = 0
    try:
        for remote_id in remote_ids:
            with contextlib.suppress(RemoteNotFoundError):  # already gone: done all the same
                run.send(unmanaged_deprovision(remote_id, run.plan))
            done += 1
    finally:
        flush(run, [])  # the delivery log
    return done


def reconcile_unmanaged(connector_id: Any) -> int:
    """Deprovision users the app has but should not, if the connector allows it; returns how many."""
    connector = Connector.objects.select_related("provisioning").filter(pk=connector_id).first()
    if connector is None or not connector.has_provisioning or not connector.provisioning.deprovision_unmanaged:
        return 0
    if connector.provisioning.paused or not (connector.enabled and connector.provisioning.enabled):
        return 0
    run = ConnectorRun(connector)
    try:
        unmanaged = unmanaged_remote_users(connector, run.client, run.plan)
    finally:
        flush(run, [])  # the delivery log of the listing
    if not unmanaged:
        return 0
    threshold = deprovision_threshold(connector)
    if len(unmanaged) > threshold:
        hold_open_remote(connector=connector, remote_users=unmanaged, threshold=threshold)
        return 0
    return deprovision_remote_ids(run, [user["id"] for user in unmanaged])


def deprovision_approved_remote_users(hold_id: int) -> int:
    hold = DeprovisionHold.objects.select_related("connector__provisioning").filter(pk=hold_id).first()
    if hold is None or hold.status != HoldStatus.APPROVED or not hold.remote_ids:
        return 0
    return deprovision_remote_ids(ConnectorRun(hold.connector), list(hold.remote_ids))
