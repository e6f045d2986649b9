"""A full sync is recorded a chunk of objects per transaction (outbox.record_full_sync).

Recorded in one transaction, "Sync now" on a million users held a million links locked for 80 s:
the workers' flushes waited past their task's time limit, and so would any change to those users.
Here the first chunk is recorded in the admin's transaction and the rest in the background; each
object still gets one event, a second sync starts again from the first object, and the sweep
resumes a recording whose task was lost. PROVISIONING_FULL_SYNC_CHUNK is 2, so chunks show.
"""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.connectors import services as connector_services
from apps.provisioning import services, waiting
from apps.provisioning.models import FullSyncRecording, ObjectType, OutboxEvent, RemoteObject
from apps.provisioning.outbox import continue_full_sync, record_full_sync
from apps.provisioning.selectors import provisioning_state, sync_progress
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, wait_until

pytestmark = pytest.mark.django_db

CHUNK = 2


@pytest.fixture
def connector(db, settings, only_this_process_provisions):
    """Seven users in scope (five in two assigned groups, two directly), one user and one group
    linked but out of scope, every earlier event processed: the directory is in sync."""
    settings.PROVISIONING_FULL_SYNC_CHUNK = CHUNK
    connector = make_connector(None, base_url="http://127.0.0.1:9/scim/v2", token="t")
    users = [UserFactory() for _ in range(8)]
    assign(connector, group=GroupFactory(members=users[:3]))
    assign(connector, group=GroupFactory(members=users[2:5]))
    for user in users[5:7]:
        assign(connector, user=user)
    gone = GroupFactory()
    RemoteObject.objects.create(connector=connector, object_type=ObjectType.USER, object_id=users[7].pk)
    RemoteObject.objects.create(connector=connector, object_type=ObjectType.GROUP, object_id=gone.pk)
    FullSyncRecording.objects.filter(connector=connector).delete()  # none is expected; the tests start clean
    OutboxEvent.objects.filter(connector=connector).update(processed_at=timezone.now())
    return connector


def _events(connector, reason: str) -> tuple[Counter, Counter]:
    events = OutboxEvent.objects.filter(connector=connector, reason=reason, processed_at__isnull=True)
    return Counter(events.values_list("object_type", flat=True)), Counter(events.values_list("object_id", flat=True))


def _finish(connector) -> None:
    while continue_full_sync(connector.pk, seconds=30):
        pass


def test_the_first_chunk_is_recorded_now_and_the_rest_in_chunks_each_object_once(connector):
    with transaction.atomic():
        first = record_full_sync(connector, "sync.manual")
    assert CHUNK <= first < 10  # 8 users and 3 groups in all
    recording = FullSyncRecording.objects.get(connector=connector)
    assert recording.recorded == first and recording.object_type == ObjectType.USER

    state = provisioning_state(connector)
    assert state.key == "syncing" and state.queuing == first
    assert "still being queued" in state.detail
    progress = sync_progress(connector, state)
    assert progress.queuing and progress.seconds_left is None and "still being queued" in progress.pace

    positions = []
    while continue_full_sync(connector.pk, seconds=0):  # one chunk per call
        positions.append(FullSyncRecording.objects.get(connector=connector).after_id)
    assert len(positions) >= 2  # it went on in chunks

    assert not FullSyncRecording.objects.filter(connector=connector).exists()
    types, objects = _events(connector, "sync.manual")
    assert types == {"user": 8, "group": 3}  # every user in scope or linked, every group
    assert set(objects.values()) == {1}  # each object once
    assert waiting.repair() == 0
    assert provisioning_state(connector).queuing is None
    assert not sync_progress(connector).queuing


def test_a_sync_asked_for_again_starts_from_the_first_object(connector):
    record_full_sync(connector, "first")
    record_full_sync(connector, "again")
    _finish(connector)
    _, first = _events(connector, "first")
    _, again = _events(connector, "again")
    assert len(again) == 11 and set(again.values()) == {1}
    assert 0 < len(first) < 11  # only the first chunk of the sync it replaced
    assert waiting.repair() == 0


def test_turning_identity_management_off_ends_the_recording(connector):
    record_full_sync(connector)
    recorded = OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).count()
    connector.provisioning.enabled = False
    connector.provisioning.save(update_fields=["enabled"])
    assert continue_full_sync(connector.pk, seconds=30) is False
    assert not FullSyncRecording.objects.filter(connector=connector).exists()
    assert OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).count() == recorded


def test_sync_now_from_the_console_and_the_api_and_a_settings_change_are_recorded_in_chunks(connector, api_client):
    from django.urls import reverse

    from apps.directory.models import AdminRole
    from tests.console.conftest import console_client, make_staff

    console = console_client(make_staff(AdminRole.ADMIN))
    response = console.post(reverse("console:connector_sync", args=[connector.slug]), follow=True)
    assert "the rest are being queued in the background" in response.content.decode()
    page = console.get(reverse("console:connector_provisioning", args=[connector.slug])).content.decode()
    assert "a full sync is still being queued" in page
    _finish(connector)

    body = api_client.post(f"/api/v1/connectors/{connector.pk}/sync").json()
    assert body["more_to_queue"] is True and body["queued_objects"] >= CHUNK
    state = api_client.get(f"/api/v1/connectors/{connector.pk}/provisioning").json()
    assert state["full_sync_queued"] >= CHUNK and "still being queued" in state["state"]["detail"]
    _finish(connector)
    assert api_client.get(f"/api/v1/connectors/{connector.pk}/provisioning").json()["full_sync_queued"] is None

    connector_services.connector_update(actor=None, connector=connector, provisioning={"rate_limit_per_second": 7})
    assert FullSyncRecording.objects.get(connector=connector).reason == "connector.update"
    _finish(connector)
    _, objects = _events(connector, "connector.update")
    assert len(objects) == 11 and set(objects.values()) == {1}


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_workers_record_the_rest_and_the_sweep_resumes_a_recording_whose_task_was_lost(
    downstream, provisioning_workers, settings
):
    settings.PROVISIONING_FULL_SYNC_CHUNK = CHUNK
    connector = make_connector(downstream)
    users = [UserFactory(username=f"chunked{i:02d}") for i in range(9)]
    assign(connector, group=GroupFactory(members=users))
    provisioning_workers.start(PROVISIONING_FULL_SYNC_CHUNK=str(CHUNK))

    def created() -> Counter:
        return Counter(r.body["userName"] for r in downstream.calls("POST", "/Users") if r.status == 201)

    wait_until(lambda: len(created()) == 9, message="the assigned users to be created")
    services.connector_sync(actor=None, connector=connector)  # its own transaction, committed
    wait_until(
        lambda: not FullSyncRecording.objects.filter(connector=connector).exists(),
        message="the workers to record the rest of the sync",
    )
    _, objects = _events_of_any_state(connector, "sync.manual")
    assert len(objects) == 10 and set(objects.values()) == {1}  # nine users and the group, once each

    # A recording left standing with no task (its worker died): the sweep in beat resumes it.
    stalled = timezone.now() - timedelta(minutes=10)
    FullSyncRecording.objects.create(connector=connector, reason="resumed", started=stalled, updated=stalled)
    wait_until(
        lambda: not FullSyncRecording.objects.filter(connector=connector).exists(),
        message="the sweep to resume the recording",
    )
    _, objects = _events_of_any_state(connector, "resumed")
    assert len(objects) == 10
    wait_until(lambda: not OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).exists())
    assert set(created().values()) == {1}  # synced again, nobody created twice


def _events_of_any_state(connector, reason: str):
    events = OutboxEvent.objects.filter(connector=connector, reason=reason)
    return Counter(events.values_list("object_type", flat=True)), Counter(events.values_list("object_id", flat=True))
