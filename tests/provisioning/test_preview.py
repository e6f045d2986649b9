"""The dry-run preview: the connector's switches, a constant number of queries per page, paging,
the circuit breaker and the users only the app has. (That it equals what a sync sends, over
randomized directories and settings, is test_preview_matches_sync.py.)
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.connectors import services as connector_services
from apps.directory import services as directory
from apps.provisioning import services
from apps.provisioning.models import Delivery, DeprovisionHold, SyncStatus
from apps.provisioning.preview import preview_sync
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, remote, run, sync, unassign

pytestmark = pytest.mark.django_db


def _user(name, **extra):
    return UserFactory(username=name, email=f"{name}@example.com", **extra)


def _set(connector, **provisioning):
    connector_services.connector_update(actor=None, connector=connector, provisioning=provisioning)
    connector.refresh_from_db()
    connector.provisioning.refresh_from_db()


def _sync_now(connector):
    services.connector_sync(actor=None, connector=connector)
    sync(connector)


def test_the_preview_leaves_out_what_the_switches_turn_off_and_says_why(downstream):
    connector = make_connector(downstream)
    kept, leaving = _user("kept"), _user("leaving")
    for user in (kept, leaving):
        assign(connector, user=user)
    sync(connector)
    _set(connector, operations=["update_users"])
    newcomer = _user("newcomer")
    assign(connector, group=GroupFactory(name="Newcomers", members=[newcomer]))
    unassign(connector, user=leaving)

    preview = preview_sync(connector)

    assert preview.creates == preview.deactivations == preview.group_creates == []
    assert sorted((entry["label"], entry["reason"]) for entry in preview.skipped) == [
        ("Newcomers", "Pushing groups is turned off for this connector."),
        ("leaving", "Deactivate users is turned off for this connector."),
        ("newcomer", "Creating users is turned off for this connector."),
    ]
    assert preview.sends_nothing
    downstream.reset_log()
    _sync_now(connector)
    assert downstream.writes() == []
    assert remote(connector, newcomer).last_error == "Creating users is turned off for this connector."


def test_a_group_is_sent_only_with_the_members_the_app_will_have(downstream):
    """Members whose creation is turned off are not in the group the app is sent; empty groups are not created."""
    connector = make_connector(downstream, operations=["update_users", "deactivate_users", "push_groups"])
    downstream.seed_user("outsider")
    alone = GroupFactory(name="Alone", members=[_user("nobody")])
    assign(connector, group=alone)

    preview = preview_sync(connector).as_dict()

    assert preview["group_creates"] == []
    assert [(entry["label"], entry["reason"]) for entry in preview["skipped"] if entry["object_type"] == "group"] == [
        ("Alone", "Empty groups are not created in the app.")
    ]
    _sync_now(connector)
    assert downstream.group("Alone") is None


def test_a_member_the_app_deleted_is_not_removed_from_its_group_again(downstream):
    """Deprovision = delete, groups not pushed while a member left: the app's group still lists it in
    the link. Back in scope with creates off, the user has no account in the app to remove."""
    connector = make_connector(downstream, deprovision="delete")
    alice, bob = _user("alice"), _user("bob")
    group = GroupFactory(name="Crew", members=[alice, bob])
    assign(connector, group=group)
    sync(connector)
    _set(connector, operations=["create_users", "update_users", "delete_users"])
    directory.group_remove_members(actor=None, group=group, users=[alice])
    sync(connector)
    assert remote(connector, alice).status == SyncStatus.DEPROVISIONED
    assert str(alice.pk) in remote(connector, group).remote_members
    _set(connector, operations=["update_users", "delete_users", "push_groups"])
    directory.group_add_members(actor=None, group=group, users=[alice])

    preview = preview_sync(connector)

    assert preview.membership_changes == []
    assert [entry["label"] for entry in preview.skipped] == ["alice"]
    downstream.reset_log()
    _sync_now(connector)
    assert downstream.writes() == []


def _directory(connector, users: int, groups: int, members: int):
    people = [_user(f"p{users}x{i:04d}") for i in range(users)]
    for i in range(users // 3):
        assign(connector, user=people[i])
    for g in range(groups):
        team = GroupFactory(name=f"Team {users}-{g}", members=people[g * members % users :][:members])
        assign(connector, group=team)
    return people


def _queries(connector, **page) -> int:
    with CaptureQueriesContext(connection) as captured:
        preview_sync(connector, **page)
    return len(captured.captured_queries)


def test_a_page_of_the_preview_costs_the_same_queries_whatever_the_directory_size(
    downstream, django_assert_max_num_queries
):
    small = make_connector(downstream)
    _directory(small, users=6, groups=2, members=3)
    sync(small)
    budget = {
        "first page": _queries(small, page_size=4),  # users, and the whole connector's notes
        "users and groups": _queries(small, page=2, page_size=4),
        "groups only": _queries(small, page=2, page_size=6),
    }

    large = make_connector(downstream)
    people = _directory(large, users=150, groups=12, members=40)
    sync(large, timeout=60)
    for user in people[::7]:
        directory.user_update(actor=None, user=user, last_name="Changed")
    directory.user_suspend(actor=None, user=people[1])
    objects = preview_sync(large, page_size=4).page.objects
    assert objects == 150 + 12

    with django_assert_max_num_queries(budget["first page"]):
        first = preview_sync(large, page_size=50)
    assert len(first.updates) + len(first.deactivations) > 0
    with django_assert_max_num_queries(budget["users and groups"]):
        middle = preview_sync(large, page=3, page_size=60)  # users 121-150, groups 1-30
    assert middle.page.first == 121
    with django_assert_max_num_queries(budget["groups only"]):
        groups = preview_sync(large, page=2, page_size=150)
    assert groups.page.last == objects
    assert budget["first page"] <= 25


def test_pages_examine_every_object_once_users_then_groups(downstream):
    connector = make_connector(downstream)
    people = [_user(f"member{i:02d}") for i in range(11)]
    for person in people[:4]:
        assign(connector, user=person)
    for name in ("One", "Two", "Three"):
        assign(connector, group=GroupFactory(name=name, members=people[4:]))

    seen = []
    page = preview_sync(connector, page_size=5)
    assert (page.page.objects, page.page.pages) == (14, 3)
    for number in range(1, 4):
        page = preview_sync(connector, page=number, page_size=5)
        seen += [("user", entry["userName"]) for entry in page.creates]
        seen += [("group", entry["displayName"]) for entry in page.group_creates]
    assert sorted(seen) == sorted(
        [("user", person.username) for person in people] + [("group", name) for name in ("One", "Two", "Three")]
    )
    assert [kind for kind, _ in seen] == ["user"] * 11 + ["group"] * 3
    assert preview_sync(connector, page=99, page_size=5).page.number == 3  # past the end: the last page


def test_the_dry_run_api_pages_and_refuses_a_bad_page(downstream, api_client):
    connector = make_connector(downstream)
    for i in range(3):
        assign(connector, user=_user(f"api{i}"))
    url = f"/api/v1/connectors/{connector.pk}/sync?dry_run=1"

    second = api_client.post(url + "&page=2&page_size=2")
    assert second.status_code == 200
    assert second.json()["page"] == {"number": 2, "size": 2, "objects": 3, "pages": 2, "exact": True}
    assert len(second.json()["creates"]) == 1  # users are examined in the order of their ids
    for query in ("&page_size=0", "&page_size=501", "&page=zero", "&page=0"):
        response = api_client.post(url + query)
        assert response.status_code == 400, query
        assert set(response.json()) & {"page", "page_size", "errors", "detail"}


def test_the_preview_says_when_the_circuit_breaker_would_hold_the_sync(downstream):
    connector = make_connector(downstream, deprovision_threshold_count=2, deprovision_threshold_percent=0)
    people = [_user(f"held{i}") for i in range(5)]
    for person in people:
        assign(connector, user=person)
    sync(connector)
    for person in people[:3]:
        unassign(connector, user=person)

    preview = preview_sync(connector)

    assert preview.held["deprovisions"] == 3 and preview.held["threshold"] == 2
    assert "approve" in preview.held["reason"]
    downstream.reset_log()
    services.connector_sync(actor=None, connector=connector)
    assert run(connector).held
    assert downstream.writes() == []
    assert DeprovisionHold.objects.filter(connector=connector).count() == 1
    connector.provisioning.refresh_from_db()
    assert "Provisioning is paused" in preview_sync(connector).blocked


def test_the_preview_lists_the_users_only_the_app_has_by_reading_it_and_records_nothing(downstream):
    connector = make_connector(downstream, deprovision_unmanaged=True, deprovision_threshold_count=100)
    assign(connector, user=_user("managed"))
    sync(connector)
    downstream.seed_user("stranger")
    downstream.seed_user("gone", active=False)  # already inactive: deactivating it again sends nothing
    deliveries = Delivery.objects.count()
    downstream.reset_log()

    preview = preview_sync(connector)

    stranger = downstream.user("stranger")
    assert preview.unmanaged == [
        {
            "id": stranger["id"],
            "userName": "stranger",
            "request": {
                "method": "PATCH",
                "path": f"/Users/{stranger['id']}",
                "body": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": False}],
                },
            },
        }
    ]
    assert preview.unmanaged_count == 1
    assert {request.method for request in downstream.calls()} == {"GET"}
    assert Delivery.objects.count() == deliveries
    assert preview_sync(connector, page=1).unmanaged  # asked again, read again


def test_the_preview_of_an_app_that_cannot_be_read_says_so(downstream):
    connector = make_connector(downstream, deprovision_unmanaged=True)
    assign(connector, user=_user("someone"))
    downstream.fail(503, times=5, method="GET", path="/Users")

    preview = preview_sync(connector)

    assert [entry["userName"] for entry in preview.creates] == ["someone"]
    assert len(preview.errors) == 1 and "could not be listed" in preview.errors[0]["error"]


def test_a_scope_too_large_to_count_pages_the_same_objects_and_says_about(downstream, monkeypatch):
    """Above SCOPE_EXACT_COUNT_LIMIT the preview reads each page from the two id-ordered lists
    instead of counting their union: the same objects in the same order, the total an estimate
    until a page reaches the end."""
    from apps.connectors import selectors as connector_selectors

    connector = make_connector(downstream)
    people = [_user(f"wide{i:02d}") for i in range(9)]
    assign(connector, user=people[0])
    assign(connector, group=GroupFactory(name="Everyone", members=people))  # people[0] reached twice
    assign(connector, group=GroupFactory(name="Some", members=people[:3]))
    sync(connector)
    unassign(connector, user=people[0])
    gone = _user("gone")
    assign(connector, user=gone)
    sync(connector)
    unassign(connector, user=gone)  # linked in the app, out of scope: the sync deactivates it

    def pages() -> list[tuple[str, ...]]:
        seen = []
        for number in range(1, 5):
            preview = preview_sync(connector, page=number, page_size=3)
            seen.append(
                (preview.page.exact, preview.page.objects, [entry["userName"] for entry in preview.deactivations])
            )
        return seen

    exact = pages()
    monkeypatch.setattr(connector_selectors, "SCOPE_EXACT_COUNT_LIMIT", 2)
    assert not connector_selectors.users_in_scope_count(connector).exact
    estimated = pages()
    assert [page[2] for page in estimated] == [page[2] for page in exact]
    assert sum(len(page[2]) for page in exact) == 1
    # 10 users (9 in scope, 1 linked only) and 2 groups: page 1 estimates, the last pages know.
    assert exact[0][:2] == (True, 12)
    assert estimated[0][0] is False
    assert estimated[-1][:2] == (True, 12)
