"""A connector's Provisioning tab: state per object, the delivery log, preview, sync, retry, pause, holds."""

import uuid
from collections.abc import Iterator

import pytest

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.directory import services as directory
from apps.provisioning import breaker
from apps.provisioning.models import DeprovisionHold, HoldStatus, ObjectType, RemoteObject, SyncStatus
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.downstream import FaultyScimServer
from tests.provisioning.helpers import assign, make_connector, pending, sync


@pytest.fixture
def app() -> Iterator[FaultyScimServer]:
    """The strict SCIM app of tests/provisioning, on loopback, with programmable faults."""
    server = FaultyScimServer().start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _fresh_scim_clients():
    from apps.provisioning import client

    yield
    with client._clients_lock:
        for cached in client._clients.values():
            cached.close()
        client._clients.clear()


def _team(connector, size: int, name: str = "Team"):
    users = [
        UserFactory(username=f"{name.lower()}{i:02d}", email=f"{name.lower()}{i:02d}@example.com") for i in range(size)
    ]
    group = GroupFactory(name=name, members=users)
    assign(connector, group=group)
    return group, users


def _tab(client, connector, query: str = ""):
    response = client.get(f"/console/connectors/{connector.slug}/provisioning/{query}")
    assert response.status_code == 200
    return response


def test_counts_are_polled_while_anything_is_pending_and_polling_stops_when_synced(db, admin_client, app):
    connector = make_connector(app)
    _team(connector, 3)

    page = _tab(admin_client, connector).content.decode()
    assert 'hx-trigger="every 2s"' in page
    counts_url = f"/console/connectors/{connector.slug}/provisioning/counts/"
    assert f'hx-get="{counts_url}"' in page
    partial = admin_client.get(counts_url, HTTP_HX_REQUEST="true").content.decode()
    assert "Syncing:" in partial and "<html" not in partial

    sync(connector)

    partial = admin_client.get(counts_url, HTTP_HX_REQUEST="true")
    assert "every 2s" not in partial.content.decode()
    state = partial.context["state"]
    assert state.in_app == 4  # three users and the group
    assert state.waiting == 0 and state.key == "up_to_date"


def test_failures_are_filterable_and_explained_in_plain_words(db, admin_client, app):
    connector = make_connector(app)
    app.fail(400, times=1, method="POST", path="/Users", detail="emails[0].value is not a valid address")
    assign(connector, user=UserFactory(username="alice"))
    assign(connector, user=UserFactory(username="carol"))
    sync(connector)
    assert RemoteObject.objects.filter(connector=connector, status=SyncStatus.FAILED).count() == 1

    failed = _tab(admin_client, connector, "?status=failed")
    rows = failed.context["rows"]
    assert [row["object"].status for row in rows] == ["failed"]
    html = failed.content.decode()
    assert "The app answered HTTP 400" in html and "not a valid address" in html
    assert "refused the data it was sent" in html

    groups_only = _tab(admin_client, connector, "?object_type=group")
    assert list(groups_only.context["rows"]) == []
    assert "Nothing in this state" in groups_only.content.decode()

    log = _tab(admin_client, connector).content.decode()
    assert "POST" in log and "/Users" in log and ">400<" in log and ">201<" in log


def test_objects_and_deliveries_are_paginated_with_a_fixed_number_of_queries(
    db, admin_client, app, settings, django_assert_max_num_queries
):
    settings.CONSOLE_PAGE_SIZE = 4
    connector = make_connector(app)
    _team(connector, 5, "Small")
    sync(connector)
    _tab(admin_client, connector)
    with django_assert_max_num_queries(30) as few:
        first = _tab(admin_client, connector)
    assert len(first.context["rows"]) == 4
    assert first.context["page_obj"].paginator.num_pages == 2

    _team(connector, 30, "Large")
    sync(connector, timeout=60)
    with django_assert_max_num_queries(len(few.captured_queries)):
        last = _tab(admin_client, connector, "?page=10&dpage=2")
    assert last.context["page_obj"].number == 10
    assert last.context["deliveries"].number == 2
    assert len(last.context["rows"]) == 37 - 9 * 4  # 35 users and 2 groups


def test_preview_shows_each_change_with_its_attributes_before_anything_is_sent(db, admin_client, app):
    connector = make_connector(app)
    _, (ann, ben, _) = _team(connector, 3, "Crew")
    sync(connector)
    directory.user_update(actor=None, user=ann, first_name="Annabel")
    directory.user_suspend(actor=None, user=ben)
    newcomer = UserFactory(username="newcomer", first_name="Nia")
    assign(connector, user=newcomer)
    app.reset_log()

    response = admin_client.get(f"/console/connectors/{connector.slug}/provisioning/preview/")

    assert response.status_code == 200
    html = response.content.decode()
    summary = response.context["summary"]
    assert summary["creates"] == 1 and summary["updates"] == 1 and summary["deactivations"] == 1
    assert "newcomer" in html and "name.givenName" in html and "Nia" in html
    assert "Annabel" in html and ann.username in html
    assert ben.username in html and "Deactivate" in html
    assert "Sync now" in html
    assert app.count() == 0  # nothing was sent


def test_preview_shows_what_the_switches_hold_back_and_pages_a_large_directory(db, admin_client, app, monkeypatch):
    connector = make_connector(app, operations=["update_users", "push_groups"])
    _team(connector, 5, "Crew")
    monkeypatch.setattr("apps.provisioning.preview.PAGE_SIZE", 4)
    url = f"/console/connectors/{connector.slug}/provisioning/preview/"

    first = admin_client.get(url)

    html = first.content.decode()
    assert first.context["summary"]["creates"] == 0
    assert "Not sent" in html and "Creating users is turned off for this connector." in html
    assert "Objects 1\u20134 of 6" in html and 'rel="next"' in html
    last = admin_client.get(url, {"page": "2"}).content.decode()
    assert "Objects 5\u20136 of 6" in last and "Empty groups are not created in the app." in last
    assert app.count() == 0


def test_preview_says_when_the_app_is_up_to_date(db, admin_client, app):
    connector = make_connector(app)
    _team(connector, 2)
    sync(connector)
    html = admin_client.get(f"/console/connectors/{connector.slug}/provisioning/preview/").content.decode()
    assert "a sync would send nothing" in html


def test_sync_retry_pause_and_resume_are_audited(db, admin, admin_client, app):
    connector = make_connector(app)
    _team(connector, 2)
    base = f"/console/connectors/{connector.slug}/provisioning"

    assert admin_client.post(f"{base}/sync/").status_code == 302
    assert pending(connector) > 0
    sync(connector)
    app.fail(400, times=1, method="PUT")
    RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER).update(
        status=SyncStatus.FAILED, last_error="The app answered HTTP 400"
    )

    assert admin_client.post(f"{base}/retry/").status_code == 302
    assert pending(connector) >= 2

    assert admin_client.post(f"{base}/pause/").status_code == 302
    connector.provisioning.refresh_from_db()
    assert connector.provisioning.paused
    assert "Provisioning is paused" in _tab(admin_client, connector).content.decode()

    assert admin_client.post(f"{base}/resume/").status_code == 302
    connector.provisioning.refresh_from_db()
    assert not connector.provisioning.paused

    actions = list(AuditEvent.objects.filter(actor=admin, target_id=str(connector.pk)).values_list("action", flat=True))
    assert {"provisioning.sync", "provisioning.retry", "provisioning.pause", "provisioning.resume"} <= set(actions)


def test_sync_of_a_disabled_connector_says_nothing_was_queued(db, admin_client, app):
    connector = make_connector(app)
    connector_services.connector_update(actor=None, connector=connector, enabled=False)
    response = admin_client.post(f"/console/connectors/{connector.slug}/provisioning/sync/", follow=True)
    assert "Nothing was queued" in response.content.decode()


def _hold(connector, count: int = 3) -> DeprovisionHold:
    remotes = [
        RemoteObject.objects.create(
            connector=connector,
            object_type=ObjectType.USER,
            object_id=uuid.uuid4(),
            remote_id=f"r-{i}",
            label=f"leaver{i}",
            status=SyncStatus.SYNCED,
        )
        for i in range(count)
    ]
    return breaker.hold_open(connector=connector, remotes=remotes, threshold=2)


@pytest.mark.parametrize(("decision", "status"), [("approve", HoldStatus.APPROVED), ("cancel", HoldStatus.CANCELLED)])
def test_a_held_batch_is_listed_with_its_users_and_decided_by_an_admin(db, admin, admin_client, app, decision, status):
    connector = make_connector(app)
    hold = _hold(connector)

    html = _tab(admin_client, connector).content.decode()
    assert "Deprovisioning waiting for approval" in html
    assert "leaver0" in html and "leaver2" in html
    assert "Approve: deprovision them" in html and "Cancel: keep them in the app" in html

    # Resuming is refused while the batch waits.
    resumed = admin_client.post(f"/console/connectors/{connector.slug}/provisioning/resume/", follow=True)
    assert "waiting for approval" in resumed.content.decode()

    url = f"/console/connectors/{connector.slug}/provisioning/holds/{hold.pk}/{decision}/"
    assert admin_client.post(url).status_code == 302
    hold.refresh_from_db()
    assert hold.status == status and hold.decided_by == admin
    assert AuditEvent.objects.filter(actor=admin, action=f"provisioning.hold.{decision}").exists()
    connector.provisioning.refresh_from_db()
    assert not connector.provisioning.paused
    assert "Deprovisioning waiting for approval" not in _tab(admin_client, connector).content.decode()

    assert admin_client.get(url).status_code == 302  # GET never decides
    assert (
        admin_client.post(f"/console/connectors/{connector.slug}/provisioning/holds/{hold.pk}/delete/").status_code
        == 404
    )


def test_read_only_sees_the_tab_without_its_buttons_and_may_not_act(db, readonly_client, app):
    connector = make_connector(app)
    hold = _hold(connector)
    base = f"/console/connectors/{connector.slug}/provisioning"

    html = _tab(readonly_client, connector).content.decode()
    assert "Preview changes" in html
    assert "Sync now" not in html and "Approve: deprovision them" not in html
    assert readonly_client.get(f"{base}/preview/").status_code == 200
    assert readonly_client.get(f"{base}/counts/").status_code == 200
    for action in ("sync/", "retry/", "pause/", "resume/", f"holds/{hold.pk}/approve/", f"holds/{hold.pk}/cancel/"):
        assert readonly_client.post(f"{base}/{action}").status_code == 403, action
    hold.refresh_from_db()
    assert hold.status == HoldStatus.PENDING


def test_help_desk_gets_403_on_the_provisioning_pages(db, helpdesk_client, app):
    connector = make_connector(app)
    base = f"/console/connectors/{connector.slug}/provisioning"
    for url in (f"{base}/", f"{base}/counts/", f"{base}/preview/"):
        assert helpdesk_client.get(url).status_code == 403, url
    assert helpdesk_client.post(f"{base}/sync/").status_code == 403


def test_a_connector_without_identity_management_has_no_provisioning_tab(db, admin_client):
    connector = connector_services.connector_create(actor=None, template="generic-saml", name="Plain SAML")
    assert admin_client.get(f"/console/connectors/{connector.slug}/provisioning/").status_code == 404
    assert "Provisioning" not in [
        tab["label"] for tab in admin_client.get(f"/console/connectors/{connector.slug}/").context["tabs"]
    ]


def test_a_paused_connector_says_paused_everywhere_and_counts_each_thing_once(db, admin, admin_client, app):
    from apps.provisioning.services import connector_pause

    connector = make_connector(app)
    _team(connector, 3)
    sync(connector)
    newcomer = UserFactory(username="newcomer.person")
    assign(connector, user=newcomer)
    connector_pause(actor=admin, connector=connector, reason="Paused by an admin")

    page = " ".join(_tab(admin_client, connector).content.decode().split())

    assert "Provisioning <span" in page and ">Paused</span>" in page  # the header, not "Active" alone
    assert "Sync in progress" not in page and "Syncing" not in page and "<progress" not in page
    assert 'hx-trigger="every 2s"' not in page  # nothing moves while paused
    assert "will be sent when it resumes" in page
    state = _tab(admin_client, connector).context["state"]
    assert (state.key, state.waiting, state.in_app) == ("paused", 1, 4)
    waiting = _tab(admin_client, connector, "?status=waiting")
    listed = [row["object"].label for row in waiting.context["rows"]]
    never_sent = waiting.context["unlisted_waiting"]
    assert len(listed) + never_sent == state.waiting == 1
    assert listed in ([], ["newcomer.person"])  # listed by name once linked, counted before


def test_objects_not_yet_sent_show_their_names_not_ids(db, admin_client, app):
    from apps.provisioning.models import ObjectType as Kind

    connector = make_connector(app)
    person = UserFactory(username="named.person")
    RemoteObject.objects.create(connector=connector, object_type=Kind.USER, object_id=person.pk)

    html = _tab(admin_client, connector).content.decode()

    assert "named.person" in html and str(person.pk) not in html.split("objects-heading")[1]


def test_a_sync_shows_done_of_total_its_rate_and_the_time_left(db, admin_client, app):
    from apps.provisioning import batch, selectors

    connector = make_connector(app)
    _team(connector, 150)  # more than one batch: the first leaves work waiting
    counts_url = f"/console/connectors/{connector.slug}/provisioning/counts/"

    partial = admin_client.get(counts_url, HTTP_HX_REQUEST="true").content.decode()
    assert "Syncing: 0 of 151 objects up to date" in partial
    assert "Waiting for the first objects to be sent." in partial

    batch.process_batch(connector.pk, deadline=float("inf"), limit=100)

    response = admin_client.get(counts_url, HTTP_HX_REQUEST="true")
    progress = response.context["progress"]
    assert (progress.done, progress.total) == (100, 151)
    # 100 settled within the rate's window: the rate, and the time left at that rate.
    assert progress.per_second == pytest.approx(100 / selectors.RATE_WINDOW_SECONDS)
    assert progress.seconds_left == pytest.approx(51 / progress.per_second)
    html = response.content.decode()
    assert "Syncing: 100 of 151 objects up to date" in html
    assert f"{progress.per_second:.0f} per second, about 15 s left." in html


def test_progress_costs_a_fixed_number_of_queries(db, admin_client, app, django_assert_max_num_queries):
    from apps.provisioning.selectors import sync_progress

    connector = make_connector(app)
    _team(connector, 20)
    with django_assert_max_num_queries(6):
        sync_progress(connector)
