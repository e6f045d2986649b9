"""Users on a connector: created (or linked), updated, suspended, reactivated, deprovisioned.

In-process engine tests against the strict downstream of tests/provisioning/downstream.py.
"""

import pytest

from apps.connectors import services as connector_services
from apps.connectors.models import MappingKind
from apps.directory import services as directory
from apps.provisioning import run as connector_run
from apps.provisioning.mapping import resource_hash
from apps.provisioning.models import SyncStatus
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, deliveries, make_connector, remote, sync, unassign

pytestmark = pytest.mark.django_db

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _alice(**overrides):
    values = {
        "username": "alice",
        "email": "alice@example.com",
        "first_name": "Alice",
        "last_name": "Liddell",
        "employee_id": "E-1001",
    }
    return UserFactory(**{**values, **overrides})


def _expected_resource(user) -> dict:
    return {
        "schemas": [USER_SCHEMA],
        "userName": user.username,
        "emails": [{"type": "work", "value": user.email, "primary": True}],
        "active": user.status == "active",
        "name": {"givenName": user.first_name, "familyName": user.last_name, "formatted": user.display_name},
        "displayName": user.display_name,
        "externalId": user.employee_id,
    }


def test_directly_assigned_user_is_created_from_the_default_mappings(downstream):
    connector = make_connector(downstream)
    alice = _alice()
    assign(connector, user=alice)

    sync(connector)

    # The app holds no user the portal has not linked (one count per batch), so a lookup could find
    # nothing: created at once with the seed attribute table.
    assert [(r.method, r.path, r.query.get("filter"), r.query.get("count")) for r in downstream.calls()] == [
        ("GET", "/Users", None, "1"),
        ("POST", "/Users", None, None),
    ]
    sent = downstream.calls("POST", "/Users")[0].body
    assert sent == _expected_resource(alice)
    assert sent["name"]["formatted"] == sent["displayName"] == "Alice Liddell"
    created = downstream.user("alice")
    state = remote(connector, alice)
    assert state.status == SyncStatus.SYNCED
    assert state.remote_id == created["id"]
    assert state.last_sent == sent
    assert state.last_sent_hash == resource_hash(sent)
    assert state.label == "alice"


def test_user_assigned_through_a_group_is_created(downstream):
    connector = make_connector(downstream, operations=["create_users", "update_users", "deactivate_users"])
    alice = _alice()
    group = GroupFactory(name="Engineering", members=[alice])
    assign(connector, group=group)

    sync(connector)

    assert downstream.user("alice")["externalId"] == "E-1001"
    assert remote(connector, alice).status == SyncStatus.SYNCED
    assert downstream.count("POST", "/Users") == 1


def test_creating_users_turned_off_sends_nothing_and_says_why(downstream):
    connector = make_connector(downstream, operations=["update_users", "deactivate_users"])
    alice = _alice()
    assign(connector, user=alice)

    sync(connector)

    assert downstream.count() == 0
    state = remote(connector, alice)
    assert state.status == SyncStatus.SKIPPED
    assert "turned off" in state.last_error


def test_existing_remote_user_with_the_same_username_is_linked_not_duplicated(downstream):
    existing = downstream.seed_user(
        "Alice",  # the app compares userName case-insensitively
        active=True,
        externalId="legacy-7",
        emails=[{"type": "work", "value": "old-alice@example.com", "primary": True}],
        title="Director",  # an attribute the connector does not manage
    )
    connector = make_connector(downstream)
    alice = _alice()
    assign(connector, user=alice)

    sync(connector)

    assert downstream.count("POST", "/Users") == 0
    assert len(downstream.users) == 1
    state = remote(connector, alice)
    assert state.status == SyncStatus.SYNCED, state.last_error
    assert state.remote_id == existing["id"]
    linked = downstream.user("alice")
    assert linked["externalId"] == "E-1001"
    assert linked["emails"][0]["value"] == "alice@example.com"
    assert linked["name"] == {"givenName": "Alice", "familyName": "Liddell", "formatted": "Alice Liddell"}
    # What the directory does not manage stays as the app has it.
    assert linked["title"] == "Director"


def test_app_that_accepts_duplicate_usernames_gets_no_duplicate(downstream):
    # This app would answer 201 to a second "alice": only the lookup before the create prevents it.
    downstream.app.unique_user_names = False
    existing = downstream.seed_user("alice", active=True)
    connector = make_connector(downstream)
    alice = _alice()
    assign(connector, user=alice)

    sync(connector)

    assert downstream.count("POST", "/Users") == 0
    assert len(downstream.users) == 1
    assert remote(connector, alice).remote_id == existing["id"]
    assert remote(connector, alice).status == SyncStatus.SYNCED


def test_user_created_in_the_app_after_the_count_is_linked_on_409(downstream):
    connector = make_connector(downstream)
    bob = UserFactory(username="bob", email="bob@example.com")
    assign(connector, user=bob)
    sync(connector)  # the app held no user the portal had not linked: created at once
    # Someone adds alice in the app directly, within the seconds the worker trusts its count.
    existing = downstream.seed_user("alice", active=True)
    alice = _alice()
    assign(connector, user=alice)

    sync(connector)

    assert [(r.body["userName"], r.status) for r in downstream.calls("POST", "/Users")] == [
        ("bob", 201),
        ("alice", 409),
    ]
    assert len(downstream.users) == 2
    assert remote(connector, alice).remote_id == existing["id"]
    assert remote(connector, alice).status == SyncStatus.SYNCED, remote(connector, alice).last_error
    assert downstream.user("alice")["externalId"] == "E-1001"  # then updated to the directory's values


@pytest.mark.parametrize(("ratio", "counts"), [(0, 2), (10**9, 1)])
def test_the_count_of_the_apps_users_is_trusted_longer_the_longer_it_took(downstream, monkeypatch, ratio, counts):
    # Counting a connector's links grows with the directory: the finding is trusted for as many
    # times the check's own time, so the count stays a small part of a worker's time.
    monkeypatch.setattr(connector_run, "NONE_UNLINKED_SECONDS", 0.0)
    monkeypatch.setattr(connector_run, "NONE_UNLINKED_CHECK_RATIO", ratio)
    connector = make_connector(downstream)
    for name in ("bob", "carol"):
        assign(connector, user=UserFactory(username=name, email=f"{name}@example.com"))
        sync(connector)

    assert [r.query.get("filter") for r in downstream.calls("GET", "/Users")] == [None] * counts
    assert downstream.count("POST", "/Users") == 2


def test_existing_remote_user_found_by_external_id_is_linked(downstream):
    existing = downstream.seed_user("a.liddell", active=True, externalId="E-1001")
    connector = make_connector(downstream)
    alice = _alice()
    assign(connector, user=alice)

    sync(connector)

    # The app holds a user the portal has not linked: looked up by userName, then externalId.
    assert [r.query.get("filter") for r in downstream.calls("GET", "/Users")] == [
        None,
        'userName eq "alice"',
        'externalId eq "E-1001"',
    ]
    assert downstream.count("POST", "/Users") == 0
    assert len(downstream.users) == 1
    assert remote(connector, alice).remote_id == existing["id"]
    assert remote(connector, alice).status == SyncStatus.SYNCED, remote(connector, alice).last_error
    assert downstream.user("alice")["id"] == existing["id"]  # renamed to the directory's userName


def test_profile_change_is_pushed_as_a_patch_of_the_changed_attributes(downstream):
    connector = make_connector(downstream)
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    remote_id = remote(connector, alice).remote_id
    downstream.reset_log()

    directory.user_update(actor=None, user=alice, last_name="Hargreaves")
    sync(connector)

    assert [(r.method, r.path) for r in downstream.calls()] == [("PATCH", f"/Users/{remote_id}")]
    assert downstream.calls()[0].body == {
        "schemas": [PATCH_SCHEMA],
        "Operations": [
            {"op": "replace", "path": "displayName", "value": "Alice Hargreaves"},
            {
                "op": "replace",
                "path": "name",
                "value": {"givenName": "Alice", "familyName": "Hargreaves", "formatted": "Alice Hargreaves"},
            },
        ],
    }
    assert downstream.user("alice")["name"]["familyName"] == "Hargreaves"


def test_profile_change_is_pushed_as_put_when_the_connector_says_so(downstream):
    connector = make_connector(downstream, update_method="put")
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    remote_id = remote(connector, alice).remote_id
    downstream.reset_log()

    directory.user_update(actor=None, user=alice, email="alice.h@example.com")
    sync(connector)

    assert [(r.method, r.path) for r in downstream.calls()] == [("PUT", f"/Users/{remote_id}")]
    alice.refresh_from_db()
    assert downstream.calls()[0].body == {**_expected_resource(alice), "id": remote_id}
    assert downstream.user("alice")["emails"] == [{"type": "work", "value": "alice.h@example.com", "primary": True}]


def test_suspension_pushes_active_false_and_reactivation_active_true(downstream):
    connector = make_connector(downstream)
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    remote_id = remote(connector, alice).remote_id
    downstream.reset_log()

    directory.user_suspend(actor=None, user=alice)
    sync(connector)
    directory.user_reactivate(actor=None, user=alice)
    sync(connector)

    assert [(r.method, r.path, r.body["Operations"]) for r in downstream.calls()] == [
        ("PATCH", f"/Users/{remote_id}", [{"op": "replace", "path": "active", "value": False}]),
        ("PATCH", f"/Users/{remote_id}", [{"op": "replace", "path": "active", "value": True}]),
    ]
    assert downstream.user("alice")["active"] is True
    assert remote(connector, alice).status == SyncStatus.SYNCED


def test_suspension_is_pushed_even_when_only_deactivation_is_allowed(downstream):
    connector = make_connector(downstream, operations=["create_users", "deactivate_users"])
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)

    directory.user_suspend(actor=None, user=alice)
    sync(connector)

    assert downstream.user("alice")["active"] is False


@pytest.mark.parametrize("how", ["direct", "group"])
def test_unassignment_deactivates_when_the_connector_deactivates(downstream, how):
    connector = make_connector(downstream, deprovision="deactivate")
    alice = _alice()
    group = GroupFactory(name="Sales", members=[alice])
    assign(connector, user=alice) if how == "direct" else assign(connector, group=group)
    sync(connector)
    remote_id = remote(connector, alice).remote_id
    downstream.reset_log()

    unassign(connector, user=alice) if how == "direct" else unassign(connector, group=group)
    sync(connector)

    user_writes = [(r.method, r.path) for r in downstream.writes() if r.path.startswith("/Users")]
    assert user_writes == [("PATCH", f"/Users/{remote_id}")]
    assert downstream.calls("PATCH", f"/Users/{remote_id}")[0].body["Operations"] == [
        {"op": "replace", "path": "active", "value": False}
    ]
    assert downstream.user("alice")["active"] is False
    assert remote(connector, alice).status == SyncStatus.DEPROVISIONED


def test_unassignment_deletes_when_the_connector_deletes(downstream):
    connector = make_connector(downstream, deprovision="delete")
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    remote_id = remote(connector, alice).remote_id
    downstream.reset_log()

    unassign(connector, user=alice)
    sync(connector)

    assert [(r.method, r.path) for r in downstream.calls()] == [("DELETE", f"/Users/{remote_id}")]
    assert downstream.user("alice") is None
    assert remote(connector, alice).status == SyncStatus.DEPROVISIONED


@pytest.mark.parametrize("deprovision", ["deactivate", "delete"])
def test_deleted_user_is_deprovisioned_as_configured(downstream, deprovision):
    connector = make_connector(downstream, deprovision=deprovision)
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    remote_id = remote(connector, alice).remote_id
    downstream.reset_log()

    directory.user_delete(actor=None, user=alice)
    sync(connector)

    if deprovision == "delete":
        assert [(r.method, r.path) for r in downstream.calls()] == [("DELETE", f"/Users/{remote_id}")]
        assert downstream.users == []
    else:
        assert [(r.method, r.path) for r in downstream.calls()] == [("PATCH", f"/Users/{remote_id}")]
        assert downstream.user("alice")["active"] is False


def test_user_assigned_again_after_deletion_downstream_is_created_again(downstream):
    connector = make_connector(downstream, deprovision="delete")
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    unassign(connector, user=alice)
    sync(connector)
    assert downstream.users == []

    assign(connector, user=alice)
    sync(connector)

    assert downstream.count("POST", "/Users") == 2
    assert remote(connector, alice).remote_id == downstream.user("alice")["id"]
    assert remote(connector, alice).status == SyncStatus.SYNCED


def test_user_assigned_again_after_deactivation_is_reactivated_not_recreated(downstream):
    connector = make_connector(downstream, deprovision="deactivate")
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    unassign(connector, user=alice)
    sync(connector)

    assign(connector, user=alice)
    sync(connector)

    assert downstream.count("POST", "/Users") == 1
    assert downstream.user("alice")["active"] is True
    assert len(downstream.users) == 1


def test_update_that_changes_nothing_downstream_sends_nothing(downstream):
    connector = make_connector(downstream)
    alice = _alice()
    assign(connector, user=alice)
    sync(connector)
    before = len(deliveries(connector))
    requests_before = downstream.count()

    # Neither is mapped to a SCIM attribute: the resource the app should hold is unchanged.
    directory.user_update(actor=None, user=alice, is_staff=True)
    directory.user_update(actor=None, user=alice, external_id="hr-42")
    sync(connector)

    assert len(deliveries(connector)) == before
    assert downstream.count() == requests_before
    assert remote(connector, alice).status == SyncStatus.SYNCED


def test_remote_id_and_last_sent_are_kept_per_connector(downstream):
    from tests.provisioning.downstream import FaultyScimServer

    other = FaultyScimServer().start()
    try:
        first, second = make_connector(downstream), make_connector(other)
        alice = _alice()
        assign(first, user=alice)
        assign(second, user=alice)
        sync(first)
        sync(second)

        assert remote(first, alice).remote_id == downstream.user("alice")["id"]
        assert remote(second, alice).remote_id == other.user("alice")["id"]
        assert remote(first, alice).remote_id != remote(second, alice).remote_id

        # A change that only the second connector's mappings send reaches only the second app.
        connector_services.mappings_replace(
            actor=None,
            connector=second,
            kind=MappingKind.SCIM_USER,
            rows=[
                {"source": "username", "target": "userName"},
                {"source": "status", "target": "active"},
                {"source": "external_id", "target": "externalId"},
            ],
        )
        first_before, second_before = downstream.count(), other.count()
        directory.user_update(actor=None, user=alice, external_id="hr-42")
        sync(first)
        sync(second)
        assert downstream.count() == first_before
        assert other.count("PATCH") == 1
        assert other.user("alice")["externalId"] == "hr-42"
        assert other.count() > second_before
    finally:
        other.close()


def test_resource_follows_the_connectors_own_mappings(downstream):
    connector = make_connector(downstream)
    connector_services.mappings_replace(
        actor=None,
        connector=connector,
        kind=MappingKind.SCIM_USER,
        rows=[
            {"source": "email", "target": "userName"},
            {"source": "status", "target": "active"},
            {"source": "{first_name}.{last_name}", "target": "nickName"},
            {"source": "employee_id", "target": f"{ENTERPRISE}:employeeNumber"},
            {"source": "id", "target": "externalId"},
        ],
    )
    alice = _alice()
    assign(connector, user=alice)

    sync(connector)

    assert downstream.calls("POST", "/Users")[0].body == {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "alice@example.com",
        "active": True,
        "nickName": "Alice.Liddell",
        ENTERPRISE: {"employeeNumber": "E-1001"},
        "externalId": str(alice.pk),
    }


def test_unassignment_deactivates_with_put_when_the_app_has_no_patch(fast_retries):
    from tests.provisioning.downstream import FaultyScimServer

    fast_retries.PROVISIONING_MAX_ATTEMPTS = 3

    app = FaultyScimServer(supports_patch=False).start()
    try:
        connector = make_connector(app, update_method="put")
        alice = _alice()
        assign(connector, user=alice)
        sync(connector)
        remote_id = remote(connector, alice).remote_id

        unassign(connector, user=alice)
        sync(connector)

        assert app.count("PATCH") == 0
        assert app.calls("PUT", f"/Users/{remote_id}")[-1].body["active"] is False
        assert app.user("alice")["active"] is False
        assert remote(connector, alice).status == SyncStatus.DEPROVISIONED
    finally:
        app.close()
