"""Which objects a claim takes: users before groups, in the order their changes were recorded,
never one leased by another worker or waiting for a retry, and no more than asked for."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.provisioning import claims
from apps.provisioning.models import ObjectType, OutboxEvent, RemoteObject
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector

pytestmark = pytest.mark.django_db


def test_users_come_first_in_recorded_order_and_leased_or_parked_objects_are_skipped(downstream):
    connector = make_connector(downstream)
    users = [UserFactory(username=f"claim{i}", email=f"claim{i}@example.com") for i in range(5)]
    group = GroupFactory(name="Claimed", members=users[:2])
    assign(connector, group=group)  # the members' events, then the group's
    for user in users[2:]:
        assign(connector, user=user)
    recorded = list(
        OutboxEvent.objects.filter(connector=connector, object_type=ObjectType.USER)
        .order_by("id")
        .values_list("object_id", flat=True)
    )
    later = timezone.now() + timedelta(minutes=5)
    RemoteObject.objects.filter(connector=connector, object_id=recorded[0]).update(lease_expires_at=later)
    RemoteObject.objects.filter(connector=connector, object_id=recorded[1]).update(next_attempt_at=later)

    due = claims.due_candidates(connector, 10)

    assert due == [(ObjectType.USER, object_id) for object_id in recorded[2:]] + [(ObjectType.GROUP, group.pk)]
    assert claims.due_candidates(connector, 2) == [(ObjectType.USER, object_id) for object_id in recorded[2:4]]
    claimed = claims.claim_batch(connector, 10)
    assert [remote.object_id for remote in claimed] == [*recorded[2:], group.pk]  # users first
    assert claims.due_candidates(connector, 10) == []
    assert claims.has_due_work(connector.pk) is False


def test_several_events_of_one_object_are_one_candidate(downstream):
    connector = make_connector(downstream)
    user = UserFactory(username="busy", email="busy@example.com")
    assign(connector, user=user)
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(connector=connector, object_type=ObjectType.USER, object_id=user.pk, reason="again")] * 3
    )

    assert claims.due_candidates(connector, 10) == [(ObjectType.USER, user.pk)]


def test_claimed_users_and_groups_get_their_pending_events(downstream):
    connector = make_connector(downstream)
    user = UserFactory(username="evented", email="evented@example.com")
    group = GroupFactory(name="Evented", members=[user])
    assign(connector, group=group)
    OutboxEvent.objects.create(connector=connector, object_type=ObjectType.USER, object_id=user.pk, reason="again")

    claimed = claims.claim_batch(connector, 10)
    events = claims.pending_event_ids(connector, claimed)

    pending = OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).order_by("id")
    expected: dict = {}
    for object_type, object_id, event_id in pending.values_list("object_type", "object_id", "id"):
        expected.setdefault((object_type, str(object_id)), []).append(event_id)
    assert events == expected
    assert set(events) == {(ObjectType.USER, str(user.pk)), (ObjectType.GROUP, str(group.pk))}
    assert len(events[(ObjectType.USER, str(user.pk))]) == 2
    assert claims.pending_event_ids(connector, []) == {}


def test_an_event_committed_behind_the_head_is_claimed_once_the_claims_read_from_the_start(downstream, monkeypatch):
    connector = make_connector(downstream)
    users = [UserFactory(username=f"head{i}", email=f"head{i}@example.com") for i in range(3)]
    for user in users:
        assign(connector, user=user)
    first, second, third = OutboxEvent.objects.filter(connector=connector).order_by("id").values_list("id", flat=True)
    # The first event's transaction commits after the others were read: not there yet, then back
    # under the id it was given first.
    OutboxEvent.objects.filter(id=first).delete()
    assert claims.due_candidates(connector, 10) == [(ObjectType.USER, users[1].pk), (ObjectType.USER, users[2].pk)]
    OutboxEvent.objects.create(id=first, connector=connector, object_type=ObjectType.USER, object_id=users[0].pk)

    # Claims read from the head (past the settled events' dead index entries) ...
    assert claims.due_candidates(connector, 10) == [(ObjectType.USER, users[1].pk), (ObjectType.USER, users[2].pk)]
    # ... and from the start again every HEAD_RESCAN_SECONDS.
    monkeypatch.setattr(claims, "HEAD_RESCAN_SECONDS", 0.0)
    assert claims.due_candidates(connector, 10)[0] == (ObjectType.USER, users[0].pk)
    monkeypatch.undo()

    # Nothing pending past the head: read from the start at once.
    OutboxEvent.objects.filter(id=first).delete()
    assert claims.due_candidates(connector, 10)[0] == (ObjectType.USER, users[1].pk)  # the head moves to `second`
    OutboxEvent.objects.create(id=first, connector=connector, object_type=ObjectType.USER, object_id=users[0].pk)
    OutboxEvent.objects.filter(pk__in=[second, third]).update(processed_at=timezone.now())
    assert claims.due_candidates(connector, 10) == [(ObjectType.USER, users[0].pk)]
