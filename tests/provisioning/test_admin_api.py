"""The admin operations API of a connector's provisioning: test-connection, state, sync, dry run, retry, pause."""

import pytest

from apps.directory import services as directory
from apps.provisioning.models import Delivery, OutboxEvent, RemoteObject
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.downstream import FaultyScimServer
from tests.provisioning.helpers import assign, deliveries, make_connector, pending, remote, run, sync, unassign

pytestmark = pytest.mark.django_db


def _url(connector, action: str) -> str:
    return f"/api/v1/connectors/{connector.pk}/{action}"


def _user(name, **extra):
    return UserFactory(username=name, email=f"{name}@example.com", **extra)


# --- test-connection -----------------------------------------------------------------------------


def test_test_connection_reports_what_the_app_supports(downstream, api_client):
    downstream.seed_user("Existing.Person")
    connector = make_connector(downstream)

    response = api_client.post(_url(connector, "test-connection"), {}, format="json")

    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True
    assert report["error"] == ""
    assert report["base_url"] == downstream.base_url
    assert report["supports"] == {
        "patch": True,
        "filter": True,
        "bulk": False,
        "etag": False,
        "sort": False,
        "changePassword": False,
        "paging": True,
        "case_insensitive_username": True,
    }
    assert [check["name"] for check in report["checks"]] == [
        "ServiceProviderConfig",
        "Filter by userName",
        "Paging",
        "userName case",
    ]
    assert all(check["ok"] for check in report["checks"])
    assert report["suggestions"] == []
    # Read-only: nothing was written to the app.
    assert downstream.writes() == []
    assert downstream.token not in response.content.decode()


def test_test_connection_with_a_bad_token_says_so_in_plain_words(downstream, api_client):
    connector = make_connector(downstream, token="not-the-right-token")

    report = api_client.post(_url(connector, "test-connection"), {}, format="json").json()

    assert report["ok"] is False
    assert report["error"] == ("The app refused the bearer token (HTTP 401); copy the token again from the app.")
    assert report["checks"][0] == {"name": "ServiceProviderConfig", "ok": False, "detail": report["error"]}

    # A token given in the request is tried instead, and not stored.
    report = api_client.post(_url(connector, "test-connection"), {"token": downstream.token}, format="json").json()
    assert report["ok"] is True
    connector.provisioning.refresh_from_db()
    assert connector.provisioning.token_ciphertext
    assert downstream.token not in connector.provisioning.token_ciphertext


def test_test_connection_to_an_unreachable_host_says_so_in_plain_words(downstream, api_client, request):
    connector = make_connector(downstream)
    gone = FaultyScimServer().start()
    gone.stop()  # nothing listens on its port (which stays reserved: connections are refused)
    request.addfinalizer(gone.close)

    probe = {"base_url": gone.base_url, "token": downstream.token}
    report = api_client.post(_url(connector, "test-connection"), probe, format="json").json()

    assert report["ok"] is False
    assert report["error"].startswith("Could not reach the app:")
    assert "ConnectError" in report["error"]


def test_test_connection_to_a_url_without_scim_says_so(downstream, api_client):
    connector = make_connector(downstream)
    wrong = downstream.base_url.replace("/scim/v2", "/api")

    probe = {"base_url": wrong, "token": downstream.token}
    report = api_client.post(_url(connector, "test-connection"), probe, format="json").json()

    assert report["ok"] is False
    assert "HTTP 404" in report["error"]
    assert "SCIM base URL" in report["error"]


def test_test_connection_suggests_put_when_the_app_cannot_patch(api_client):
    app = FaultyScimServer(supports_patch=False).start()
    try:
        connector = make_connector(app)
        report = api_client.post(_url(connector, "test-connection"), {}, format="json").json()
    finally:
        app.close()

    assert report["supports"]["patch"] is False
    assert 'The app does not announce PATCH: set update_method to "put".' in report["suggestions"]


# --- GET provisioning ------------------------------------------------------------------------------


def test_provisioning_state_per_object_counts_and_delivery_log(downstream, api_client):
    connector = make_connector(downstream)
    alice, bob, carol = _user("alice"), _user("bob"), _user("carol")
    group = GroupFactory(name="Engineering", members=[alice, bob])
    assign(connector, group=group)
    assign(connector, user=carol)
    downstream.fail(400, method="POST", match=lambda r: r.body.get("userName") == "carol", detail="carol is blocked")
    sync(connector)

    response = api_client.get(_url(connector, "provisioning"))

    assert response.status_code == 200
    body = response.json()
    states = {(o["object_type"], o["label"]): o for o in body["results"]}
    assert {key: o["status"] for key, o in states.items()} == {
        ("user", "alice"): "synced",
        ("user", "bob"): "synced",
        ("user", "carol"): "failed",
        ("group", "Engineering"): "synced",
    }
    assert states[("user", "alice")]["remote_id"] == downstream.user("alice")["id"]
    assert states[("group", "Engineering")]["remote_id"] == downstream.group("Engineering")["id"]
    assert "carol is blocked" in states[("user", "carol")]["last_error"]
    assert states[("user", "carol")]["attempts"] == 1
    assert states[("user", "alice")]["last_sent"]["userName"] == "alice"
    # One count per concept, the same the console shows (provisioning.selectors.provisioning_state).
    assert body["counts"] == {"in_app": 3, "deactivated": 0, "waiting": 0, "failed": 1, "held": 0, "not_sent": 0}
    assert body["state"]["key"] == "failing"
    assert body["progress"] == {"done": 4, "total": 4, "per_second": 0.0, "seconds_left": None}
    assert body["paused"] is False
    assert body["holds"] == []
    assert len(body["deliveries"]) == Delivery.objects.filter(connector=connector).count()
    posts = [d for d in body["deliveries"] if d["method"] == "POST"]
    assert {(d["path"], d["status_code"]) for d in posts} == {("/Users", 201), ("/Users", 400), ("/Groups", 201)}
    assert downstream.token not in response.content.decode()
    assert "Bearer" not in response.content.decode()

    only_groups = api_client.get(_url(connector, "provisioning"), {"object_type": "group"}).json()
    assert [o["label"] for o in only_groups["results"]] == ["Engineering"]
    failed = api_client.get(_url(connector, "provisioning"), {"status": "failed"}).json()
    assert [o["label"] for o in failed["results"]] == ["carol"]

    log = api_client.get(_url(connector, "deliveries"), {"page_size": 2}).json()
    assert log["count"] == Delivery.objects.filter(connector=connector).count()
    assert len(log["results"]) == 2
    newest = Delivery.objects.filter(connector=connector).order_by("-created", "-id").first()
    assert log["results"][0]["id"] == newest.id


# --- sync and dry run ------------------------------------------------------------------------------


def _changed_directory(downstream):
    connector = make_connector(downstream)
    anna = _user("anna", first_name="Anna", last_name="Able")
    bob = _user("bob", first_name="Bob", last_name="Bee")
    dave = _user("dave", first_name="Dave", last_name="Dee")
    erin = _user("erin", first_name="Erin", last_name="Eff")
    for user in (anna, bob, dave, erin):
        assign(connector, user=user)
    group = GroupFactory(name="Engineering", members=[anna, bob])
    assign(connector, group=group)
    sync(connector)

    carol = _user("carol", first_name="Carol", last_name="Sea")
    directory.user_update(actor=None, user=bob, last_name="Bumble")
    assign(connector, user=carol)
    directory.group_add_members(actor=None, group=group, users=[carol])
    directory.group_remove_members(actor=None, group=group, users=[anna])  # still assigned directly
    directory.user_suspend(actor=None, user=dave)
    unassign(connector, user=erin)
    return connector, {"anna": anna, "bob": bob, "carol": carol, "dave": dave, "erin": erin, "group": group}


def test_dry_run_returns_the_exact_diff_and_sends_nothing(downstream, api_client):
    connector, o = _changed_directory(downstream)
    sent_before = Delivery.objects.count()
    requests_before = downstream.count()
    pending_before = pending(connector)
    remote_before = list(RemoteObject.objects.filter(connector=connector).values())

    response = api_client.post(_url(connector, "sync") + "?dry_run=1")

    assert response.status_code == 200
    diff = response.json()
    carol = o["carol"]
    carol_resource = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "carol",
        "emails": [{"type": "work", "value": "carol@example.com", "primary": True}],
        "active": True,
        "name": {"givenName": "Carol", "familyName": "Sea", "formatted": "Carol Sea"},
        "displayName": "Carol Sea",
        "externalId": carol.employee_id,
    }
    assert diff["creates"] == [
        {
            "id": str(carol.pk),
            "userName": "carol",
            "resource": carol_resource,
            "request": {"method": "POST", "path": "/Users", "body": carol_resource},
        }
    ]
    bumble = {"givenName": "Bob", "familyName": "Bumble", "formatted": "Bob Bumble"}
    patch_schema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    assert diff["updates"] == [
        {
            "id": str(o["bob"].pk),
            "userName": "bob",
            "changed": {
                "displayName": {"from": "Bob Bee", "to": "Bob Bumble"},
                "name": {"from": {"givenName": "Bob", "familyName": "Bee", "formatted": "Bob Bee"}, "to": bumble},
            },
            "request": {
                "method": "PATCH",
                "path": f"/Users/{remote(connector, o['bob']).remote_id}",
                "body": {
                    "schemas": [patch_schema],
                    "Operations": [
                        {"op": "replace", "path": "displayName", "value": "Bob Bumble"},
                        {"op": "replace", "path": "name", "value": bumble},
                    ],
                },
            },
        }
    ]
    inactive = {"schemas": [patch_schema], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert sorted(diff["deactivations"], key=lambda entry: entry["userName"]) == [
        {
            "id": str(o[name].pk),
            "userName": name,
            "reason": reason,
            "request": {"method": "PATCH", "path": f"/Users/{remote(connector, o[name]).remote_id}", "body": inactive},
        }
        for name, reason in (("dave", "suspended"), ("erin", "no longer assigned"))
    ]
    assert diff["membership_changes"] == [
        {
            "id": str(o["group"].pk),
            "displayName": "Engineering",
            "add": [str(carol.pk)],
            "remove": [str(o["anna"].pk)],
            "renamed_from": "",
            "operations": [],
            "request": {"method": "PATCH", "path": f"/Groups/{remote(connector, o['group']).remote_id}"},
        }
    ]
    assert diff["deletions"] == diff["group_creates"] == diff["group_deletes"] == diff["errors"] == []
    assert diff["skipped"] == diff["unmanaged"] == []
    assert diff["summary"] == {
        "creates": 1,
        "updates": 1,
        "deactivations": 2,
        "deletions": 0,
        "group_creates": 0,
        "group_deletes": 0,
        "membership_changes": 1,
        "skipped": 0,
        "errors": 0,
        "unmanaged": 0,
    }
    # five users and the group
    assert diff["page"] == {"number": 1, "size": 200, "objects": 6, "pages": 1, "exact": True}
    assert (diff["blocked"], diff["held"], diff["unmanaged_count"]) == ("", None, 0)

    # Nothing sent, nothing recorded, nothing consumed.
    assert Delivery.objects.count() == sent_before
    assert downstream.count() == requests_before
    assert pending(connector) == pending_before
    assert list(RemoteObject.objects.filter(connector=connector).values()) == remote_before

    # And the real run sends exactly that.
    downstream.reset_log()
    sync(connector)
    writes = downstream.writes()
    assert [r.body["userName"] for r in writes if r.method == "POST"] == ["carol"]
    user_patches = {
        r.path: r.body["Operations"] for r in writes if r.method == "PATCH" and r.path.startswith("/Users/")
    }
    assert user_patches == {
        f"/Users/{remote(connector, o['bob']).remote_id}": [
            {"op": "replace", "path": "displayName", "value": "Bob Bumble"},
            {"op": "replace", "path": "name", "value": bumble},
        ],
        f"/Users/{remote(connector, o['dave']).remote_id}": [{"op": "replace", "path": "active", "value": False}],
        f"/Users/{remote(connector, o['erin']).remote_id}": [{"op": "replace", "path": "active", "value": False}],
    }
    group_patch = [r.body["Operations"] for r in writes if r.path.startswith("/Groups/")]
    assert group_patch == [
        [
            {"op": "add", "path": "members", "value": [{"value": remote(connector, carol).remote_id}]},
            {"op": "remove", "path": f'members[value eq "{remote(connector, o["anna"]).remote_id}"]'},
        ]
    ]
    assert api_client.post(_url(connector, "sync") + "?dry_run=true").json()["summary"] == dict.fromkeys(
        diff["summary"], 0
    )


def test_sync_queues_every_object_and_sends_only_what_differs(downstream, api_client):
    connector = make_connector(downstream)
    alice, bob = _user("alice"), _user("bob")
    group = GroupFactory(name="Engineering", members=[alice, bob])
    assign(connector, group=group)
    sync(connector)
    sent = len(deliveries(connector))

    response = api_client.post(_url(connector, "sync"))

    assert response.status_code == 202
    assert response.json() == {"queued_objects": 3, "more_to_queue": False}
    assert pending(connector) == 3
    sync(connector)
    assert len(deliveries(connector)) == sent


# --- retry, pause and resume -------------------------------------------------------------------------


def test_retry_requeues_failed_objects_only(downstream, api_client):
    connector = make_connector(downstream)
    alice, bob = _user("alice"), _user("bob")
    assign(connector, user=alice)
    assign(connector, user=bob)
    downstream.fail(422, method="POST", match=lambda r: r.body.get("userName") == "bob")
    sync(connector)
    assert remote(connector, bob).status == "failed"

    response = api_client.post(_url(connector, "retry"))

    assert response.status_code == 202
    assert response.json() == {"queued_objects": 1}
    assert list(
        OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).values_list("object_id", "reason")
    ) == [(bob.pk, "retry")]
    sync(connector)
    assert remote(connector, bob).status == "synced"
    assert remote(connector, bob).attempts == 0


def test_pause_stops_delivery_and_resume_sends_what_waited(downstream, api_client):
    connector = make_connector(downstream)
    alice = _user("alice")
    assign(connector, user=alice)
    sync(connector)
    downstream.reset_log()

    assert api_client.post(_url(connector, "pause")).json() == {"paused": True}
    directory.user_update(actor=None, user=alice, first_name="Alicia")
    run(connector)

    assert downstream.count() == 0
    body = api_client.get(_url(connector, "provisioning")).json()
    assert body["paused"] is True
    assert body["paused_reason"] == "Paused by an admin"
    assert body["counts"]["waiting"] == 1 and body["state"]["key"] == "paused"

    assert api_client.post(_url(connector, "resume")).json() == {"paused": False}
    sync(connector)
    assert downstream.count("PATCH") == 1
    assert downstream.user("alice")["name"]["givenName"] == "Alicia"


def test_a_refused_token_reports_no_feature_as_missing(scim_downstream, api_client):
    # scim2-server answers its ServiceProviderConfig to anyone, and refuses the wrong token after.
    connector = make_connector(scim_downstream, token="not-the-right-token")

    report = api_client.post(_url(connector, "test-connection"), {}, format="json").json()

    assert report["ok"] is False and "refused the bearer token" in report["error"]
    assert report["supports"] == {} and report["suggestions"] == []  # unknown, not "filter: no"


def test_a_typed_token_that_works_is_reported_as_not_saved_yet(downstream, admin_user):
    from apps.directory.models import AdminRole
    from tests.security.conftest import make_person, signed_in

    connector = make_connector(downstream, token="", enabled=False)
    client = signed_in(make_person("ada.admin", role=AdminRole.ADMIN))

    html = client.post(
        f"/console/connectors/{connector.slug}/identity/test/",
        {"base_url": downstream.base_url, "token": downstream.token},
        HTTP_HX_REQUEST="true",
    ).content.decode()

    assert "Connection works." in html and "with the token you entered. It is not saved yet" in html
    page = client.get(f"/console/connectors/{connector.slug}/identity/").content.decode()
    assert "No token is saved yet" in page and "No token is set yet" not in page
