"""The deprovisioning circuit breaker: a large batch waits for an admin, who approves or cancels it."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.directory import services as directory
from apps.provisioning.models import DeprovisionHold, HoldStatus, ObjectType, RemoteObject, SyncStatus
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, deliveries, make_connector, pending, remote, run, sync, unassign

pytestmark = pytest.mark.django_db

DEACTIVATE = [{"op": "replace", "path": "active", "value": False}]


def _team(connector, size, name="Team"):
    prefix = name.lower()
    users = [UserFactory(username=f"{prefix}{i:02d}", email=f"{prefix}{i:02d}@example.com") for i in range(size)]
    group = GroupFactory(name=name, members=users)
    assign(connector, group=group)
    sync(connector)
    return group, users


def _app_has_other_users(connector, count):
    """The app already has `count` users linked to the directory (they only count towards the 5 %)."""
    RemoteObject.objects.bulk_create(
        RemoteObject(
            connector=connector,
            object_type=ObjectType.USER,
            object_id=uuid.uuid4(),
            remote_id=f"other-{i}",
            status=SyncStatus.SYNCED,
        )
        for i in range(count)
    )


def _deactivated(downstream):
    return [r for r in downstream.calls("PATCH", "/Users/{id}") if r.body["Operations"] == DEACTIVATE]


def _provisioning(api_client, connector):
    response = api_client.get(f"/api/v1/connectors/{connector.pk}/provisioning")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("deprovision", ["deactivate", "delete"])
def test_more_than_ten_at_once_pauses_the_connector_before_sending_any(downstream, api_client, deprovision):
    connector = make_connector(downstream, deprovision=deprovision)
    group, users = _team(connector, 11)
    newcomer = UserFactory(username="newcomer", email="newcomer@example.com")
    assign(connector, user=newcomer)  # an unrelated change in the same batch waits too
    sent_before = len(deliveries(connector))
    downstream.reset_log()

    unassign(connector, group=group)
    result = run(connector)

    assert result.held
    assert downstream.count() == 0
    assert len(deliveries(connector)) == sent_before
    connector.provisioning.refresh_from_db()
    assert connector.provisioning.paused
    assert "11 users" in connector.provisioning.paused_reason
    hold = DeprovisionHold.objects.get(connector=connector)
    assert hold.status == HoldStatus.PENDING
    assert hold.threshold == 10
    assert sorted(hold.labels) == sorted(user.username for user in users)
    assert all(remote(connector, user).status == SyncStatus.HELD for user in users)
    assert all(downstream.user(user.username)["active"] for user in users)

    body = _provisioning(api_client, connector)
    assert body["paused"] is True
    assert [h["status"] for h in body["holds"]] == ["pending"]
    assert sorted(body["holds"][0]["labels"]) == sorted(user.username for user in users)
    assert sorted(body["holds"][0]["object_ids"]) == sorted(str(user.pk) for user in users)
    assert body["counts"]["held"] == 11

    # Running again changes nothing while the hold waits.
    run(connector)
    assert downstream.count() == 0


def test_ten_at_once_is_within_the_default_threshold(downstream):
    connector = make_connector(downstream)
    group, users = _team(connector, 10)
    downstream.reset_log()

    unassign(connector, group=group)
    sync(connector)

    assert not DeprovisionHold.objects.filter(connector=connector).exists()
    assert len(_deactivated(downstream)) == 10
    assert not any(downstream.user(user.username)["active"] for user in users)


@pytest.mark.parametrize(("removed", "held"), [(15, False), (16, True)])
def test_threshold_is_five_percent_of_the_apps_users_when_that_is_more(downstream, removed, held):
    connector = make_connector(downstream)
    group, _ = _team(connector, removed)
    _app_has_other_users(connector, 300 - removed)  # 300 users: 5 % is 15, more than the count of 10
    downstream.reset_log()

    unassign(connector, group=group)
    run(connector)

    assert DeprovisionHold.objects.filter(connector=connector).exists() is held
    if held:
        assert DeprovisionHold.objects.get(connector=connector).threshold == 15
        assert downstream.count() == 0
    else:
        assert len(_deactivated(downstream)) == removed


def test_approving_the_hold_deprovisions_the_users(downstream, api_client):
    connector = make_connector(downstream)
    group, users = _team(connector, 11)
    unassign(connector, group=group)
    run(connector)
    hold = DeprovisionHold.objects.get(connector=connector)
    downstream.reset_log()

    response = api_client.post(f"/api/v1/connectors/{connector.pk}/holds/{hold.pk}/approve")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    sync(connector)

    assert len(_deactivated(downstream)) == 11
    assert not any(downstream.user(user.username)["active"] for user in users)
    assert all(remote(connector, user).status == SyncStatus.DEPROVISIONED for user in users)
    connector.provisioning.refresh_from_db()
    assert not connector.provisioning.paused
    hold.refresh_from_db()
    assert hold.decided_by == api_client.user


def test_cancelling_the_hold_keeps_the_users_in_the_app(downstream, api_client):
    connector = make_connector(downstream)
    group, users = _team(connector, 11)
    unassign(connector, group=group)
    run(connector)
    hold = DeprovisionHold.objects.get(connector=connector)
    downstream.reset_log()

    response = api_client.post(f"/api/v1/connectors/{connector.pk}/holds/{hold.pk}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    sync(connector)

    assert _deactivated(downstream) == []
    assert downstream.count(path="/Users/{id}") == 0
    assert all(downstream.user(user.username)["active"] for user in users)
    assert pending(connector) == 0
    assert all(remote(connector, user).status == SyncStatus.SKIPPED for user in users)
    assert "cancelled" in remote(connector, users[0]).last_error
    connector.provisioning.refresh_from_db()
    assert not connector.provisioning.paused


def test_mistaken_group_deletion_never_wipes_the_app(downstream, api_client):
    connector = make_connector(downstream, deprovision="delete")
    group, _ = _team(connector, 25, name="Everyone")
    downstream.reset_log()

    directory.group_delete(actor=None, group=group)
    run(connector)

    assert downstream.count() == 0
    assert len(downstream.users) == 25
    assert downstream.group("Everyone") is not None
    hold = DeprovisionHold.objects.get(connector=connector)
    assert len(hold.object_ids) == 25

    # Resuming is refused while the batch waits for a decision.
    response = api_client.post(f"/api/v1/connectors/{connector.pk}/resume")
    assert response.status_code == 400
    assert response.json()["code"] == "hold_pending"
    run(connector)
    assert downstream.count() == 0


def test_an_approval_covers_only_its_own_batch(downstream, api_client):
    connector = make_connector(downstream)
    group, users = _team(connector, 11)
    unassign(connector, group=group)
    run(connector)
    hold = DeprovisionHold.objects.get(connector=connector)
    api_client.post(f"/api/v1/connectors/{connector.pk}/holds/{hold.pk}/approve")
    sync(connector)
    assign(connector, group=group)  # the same people get access again ...
    sync(connector)
    assert all(downstream.user(user.username)["active"] for user in users)
    downstream.reset_log()

    unassign(connector, group=group)  # ... and a month later someone removes them all by mistake
    run(connector)

    assert DeprovisionHold.objects.filter(connector=connector, status=HoldStatus.PENDING).count() == 1
    assert _deactivated(downstream) == []


def test_mass_suspension_is_held_too(downstream):
    connector = make_connector(downstream)
    _, users = _team(connector, 11)
    downstream.reset_log()

    for user in users:
        directory.user_suspend(actor=None, user=user)
    run(connector)

    assert downstream.count() == 0
    assert len(DeprovisionHold.objects.get(connector=connector).object_ids) == 11


def test_a_batch_that_deprovisions_nobody_is_sent_while_removals_wait_behind_it(downstream):
    connector = make_connector(downstream)
    group, users = _team(connector, 11)
    unassign(connector, group=group)
    # Another worker holds the removed users' links: this batch can only create the newcomer.
    RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER).update(
        lease_owner="other", lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    newcomer = UserFactory(username="newcomer", email="newcomer@example.com")
    assign(connector, user=newcomer)
    downstream.reset_log()

    first = run(connector)

    assert not first.held
    assert remote(connector, newcomer).status == SyncStatus.SYNCED
    assert [r.body["userName"] for r in downstream.calls("POST", "/Users")] == ["newcomer"]
    assert not DeprovisionHold.objects.filter(connector=connector).exists()

    RemoteObject.objects.filter(connector=connector, lease_owner="other").update(lease_owner="", lease_expires_at=None)
    second = run(connector)

    assert second.held
    assert _deactivated(downstream) == []
    assert sorted(DeprovisionHold.objects.get(connector=connector).labels) == sorted(u.username for u in users)
    assert all(remote(connector, user).lease_owner == "" for user in users)  # released, held for the admin


def test_users_the_app_already_has_as_inactive_do_not_count_again(downstream):
    from apps.provisioning.breaker import full_sync_deprovision_count, pending_deprovisions

    connector = make_connector(downstream)
    _, users = _team(connector, 12)
    outsider = UserFactory(username="outsider", email="outsider@example.com")
    RemoteObject.objects.create(
        connector=connector, object_type=ObjectType.USER, object_id=outsider.pk, remote_id="x", status=SyncStatus.SYNCED
    )  # linked, out of scope, never sent a state (last_sent NULL): would be deprovisioned
    for user in users:
        directory.user_suspend(actor=None, user=user)
    told = RemoteObject.objects.filter(connector=connector)
    told.filter(object_id__in=[user.pk for user in users[:2]]).update(last_sent={"active": False})
    told.filter(object_id=users[2].pk).update(last_sent={"active": None, "userName": users[2].username})

    # 9 suspended users the app still has as active, and the outsider (no pending change of its own).
    assert pending_deprovisions(connector).count() == 9
    assert full_sync_deprovision_count(connector) == 10
    run(connector)
    assert not DeprovisionHold.objects.filter(connector=connector).exists()  # 9: within the threshold of 10


def test_a_batch_within_the_threshold_is_checked_again_once_newer_changes_arrive(downstream):
    from apps.provisioning.breaker import check_circuit_breaker

    connector = make_connector(downstream)
    _, users = _team(connector, 11)
    for user in users[:5]:
        directory.user_suspend(actor=None, user=user)
    assert check_circuit_breaker(connector, {}, pending_hold=None) is None
    assert check_circuit_breaker(connector, {}, pending_hold=None) is None  # nothing newer: the verdict stands
    for user in users[5:]:
        directory.user_suspend(actor=None, user=user)

    hold = check_circuit_breaker(connector, {}, pending_hold=None)

    assert hold is not None and len(hold.object_ids) == 11
