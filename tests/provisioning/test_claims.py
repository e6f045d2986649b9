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
