"""/api/v1/audit-events: read-only, filterable, never showing a password."""

from datetime import UTC, datetime

import pytest

from apps.audit.models import AuditEvent
from apps.directory import services
from tests.factories import GroupFactory, UserFactory

# A well-formed id that no row has (fixed, so that xdist workers collect the same test ids).
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
EVENTS = "/api/v1/audit-events"
EVENT_FIELDS = {
    "id",
    "created",
    "actor",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "before",
    "after",
    "request_id",
    "ip",
}


def _at(month: int) -> datetime:
    return datetime(2020, month, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def trail(api_client):
    """Events at known times in 2020 (the api_client's own token event is 'now', long after)."""
    admin = api_client.user
    other_actor = UserFactory(username="other.actor", is_staff=True)
    user = UserFactory(username="target.user")
    services.user_update(actor=admin, user=user, first_name="Changed")
    services.user_suspend(actor=other_actor, user=user)
    group = GroupFactory(name="Audited")
    services.group_add_members(actor=admin, group=group, users=[user])

    def stamp(action: str, target, month: int) -> AuditEvent:
        event = AuditEvent.objects.get(action=action, target_id=str(target.pk))
        AuditEvent.objects.filter(pk=event.pk).update(created=_at(month))
        event.refresh_from_db()
        return event

    events = {
        "user.create": stamp("user.create", user, 1),
        "user.update": stamp("user.update", user, 2),
        "user.suspend": stamp("user.suspend", user, 3),
        "group.create": stamp("group.create", group, 4),
        "group.members.add": stamp("group.members.add", group, 5),
    }
    # Everything else (other users' creation, the API token) is moved out of the way, before 2020.
    AuditEvent.objects.exclude(pk__in=[event.pk for event in events.values()]).exclude(
        action="api_token.create"
    ).update(created=datetime(2019, 1, 1, tzinfo=UTC))
    return {"admin": admin, "other_actor": other_actor, "user": user, "group": group, "events": events}


def _actions(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["action"] for item in response.json()["results"]]


def test_list_is_paginated_newest_first_with_exact_fields(api_client, trail):
    response = api_client.get(EVENTS, {"since": "2020-01-01T00:00:00Z", "until": "2021-01-01T00:00:00Z"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "count_exact", "next", "previous", "results"}  # count_exact: see below
    assert (body["count"], body["count_exact"]) == (5, True)
    assert _actions(response) == ["group.members.add", "group.create", "user.suspend", "user.update", "user.create"]
    for item in body["results"]:
        assert set(item) == EVENT_FIELDS
    assert api_client.get(EVENTS + "/").status_code == 200


def test_list_everything_includes_the_token_event(api_client, trail):
    body = api_client.get(EVENTS).json()
    assert body["count"] == AuditEvent.objects.count()
    assert body["results"][0]["action"] == "api_token.create"


def test_retrieve_shows_one_event(api_client, trail):
    event = trail["events"]["user.update"]
    user = trail["user"]

    response = api_client.get(f"{EVENTS}/{event.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == EVENT_FIELDS
    assert body["id"] == event.pk
    assert body["action"] == "user.update"
    assert body["actor"] == str(trail["admin"].pk)
    assert body["actor_label"] == "root.admin"
    assert body["target_type"] == "directory.user"
    assert body["target_id"] == str(user.pk)
    assert body["target_label"] == "target.user"
    assert body["before"]["first_name"] == event.before["first_name"]
    assert body["after"]["first_name"] == "Changed"
    assert body["request_id"] == ""
    assert body["ip"] is None
    assert body["created"].startswith("2020-02-01T12:00:00")
    assert api_client.get(f"{EVENTS}/{event.pk}/").status_code == 200


@pytest.mark.parametrize("pk", ["999999999", "abc", UNKNOWN_ID])
def test_retrieve_unknown_is_404(api_client, pk):
    assert api_client.get(f"{EVENTS}/{pk}").status_code == 404


def test_system_actor_is_null_with_a_label(api_client):
    user = UserFactory(username="made.by.system")
    event = AuditEvent.objects.get(action="user.create", target_id=str(user.pk))
    body = api_client.get(f"{EVENTS}/{event.pk}").json()
    assert body["actor"] is None
    assert body["actor_label"] == "system"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("user.create", ["user.create"]),
        ("user.suspend", ["user.suspend"]),
        ("user", ["user.suspend", "user.update", "user.create"]),
        ("group", ["group.members.add", "group.create"]),
        ("group.members.add", ["group.members.add"]),
        ("group.members", []),  # a dotted value is an exact action, not a family
        ("use", []),
        ("user.delete", []),
    ],
)
def test_filter_by_action_exact_or_family(api_client, trail, action, expected):
    params = {"action": action, "since": "2020-01-01T00:00:00Z"}
    assert _actions(api_client.get(EVENTS, params)) == expected


def test_filter_by_actor(api_client, trail):
    params = {"until": "2021-01-01T00:00:00Z", "since": "2020-01-01T00:00:00Z"}
    assert _actions(api_client.get(EVENTS, {**params, "actor": str(trail["other_actor"].pk)})) == ["user.suspend"]
    assert _actions(api_client.get(EVENTS, {**params, "actor": str(trail["admin"].pk)})) == [
        "group.members.add",
        "user.update",
    ]
    assert _actions(api_client.get(EVENTS, {"actor": UNKNOWN_ID})) == []


def test_filter_by_target(api_client, trail):
    user, group = trail["user"], trail["group"]
    assert _actions(api_client.get(EVENTS, {"target_type": "directory.group"})) == ["group.members.add", "group.create"]
    assert _actions(api_client.get(EVENTS, {"target_id": str(user.pk)})) == [
        "user.suspend",
        "user.update",
        "user.create",
    ]
    assert _actions(api_client.get(EVENTS, {"target_type": "directory.user", "target_id": str(group.pk)})) == []
    assert _actions(api_client.get(EVENTS, {"target_type": "directory.group", "target_id": str(group.pk)})) == [
        "group.members.add",
        "group.create",
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": "2020-03-01T12:00:00Z", "until": "2020-05-01T12:00:00Z"}, ["group.create", "user.suspend"]),
        ({"since": "2020-03-01T12:00:01Z", "until": "2021-01-01T00:00:00Z"}, ["group.members.add", "group.create"]),
        ({"since": "2020-01-01T00:00:00+00:00", "until": "2020-02-01T12:00:00+00:00"}, ["user.create"]),
        ({"since": "2020-02-01T14:00:00+02:00", "until": "2020-02-01T14:00:01+02:00"}, ["user.update"]),
        ({"since": "2019-06-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}, []),
    ],
)
def test_filter_by_time_window(api_client, trail, params, expected):
    assert _actions(api_client.get(EVENTS, params)) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "not-a-date"}, "until"),
        ({"since": "2020-01-01T00:00:00Z", "until": "soon"}, "until"),
        ({"actor": "root.admin"}, "actor"),
    ],
)
def test_bad_filters_are_400(api_client, params, field):
    response = api_client.get(EVENTS, params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("value", ["2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z"])
def test_impossible_dates_are_400(api_client, value):
    response = api_client.get(EVENTS, {"since": value})
    assert response.status_code == 400
    assert "since" in response.json()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_audit_events_are_read_only(api_client, trail, method):
    event = trail["events"]["user.create"]
    url = EVENTS if method == "post" else f"{EVENTS}/{event.pk}"
    count = AuditEvent.objects.count()

    response = getattr(api_client, method)(url, {"action": "forged"}, format="json")

    assert response.status_code == 405
    assert AuditEvent.objects.count() == count
    event.refresh_from_db()
    assert event.action == "user.create"


def test_audit_events_never_show_a_password(api_client):
    response = api_client.post(
        "/api/v1/users", {"username": "pw.user", "password": "Tr0ub4dor-and-horses-42"}, format="json"
    )
    user_id = response.json()["id"]
    api_client.patch(f"/api/v1/users/{user_id}", {"password": "An0ther-long-secret!"}, format="json")

    body = api_client.get(EVENTS, {"target_id": user_id}).content.decode()

    assert '"password"' not in body
    assert "Tr0ub4dor" not in body
    assert "An0ther-long-secret" not in body
    assert "md5$" not in body
    assert "argon2" not in body
    assert _actions(api_client.get(EVENTS, {"target_id": user_id})) == ["user.set_password", "user.create"]


def test_api_writes_record_actor_request_id_and_ip(api_client):
    response = api_client.post("/api/v1/users", {"username": "traced"}, format="json", HTTP_X_REQUEST_ID="trace-0001")
    event = api_client.get(EVENTS, {"action": "user.create", "target_id": response.json()["id"]}).json()["results"][0]
    assert event["actor"] == str(api_client.user.pk)
    assert event["actor_label"] == "root.admin"
    assert event["request_id"] == "trace-0001"
    assert event["ip"] == "127.0.0.1"


def test_a_log_larger_than_the_count_cap_pages_with_a_null_count(api_client, monkeypatch):
    from apps.audit.services import audit_record
    from apps.common import paging

    monkeypatch.setattr(paging, "COUNT_CAP", 3)
    for n in range(5):
        audit_record(actor=None, action="test.capped", target_label=f"t{n}")

    first = api_client.get(EVENTS, {"action": "test.capped", "page_size": 2}).json()
    assert (first["count"], first["count_exact"]) == (None, False)
    assert [event["target_label"] for event in first["results"]] == ["t4", "t3"] and first["next"]
    last = api_client.get(EVENTS, {"action": "test.capped", "page_size": 2, "page": 3}).json()
    assert [event["target_label"] for event in last["results"]] == ["t0"] and last["next"] is None
    assert api_client.get(EVENTS, {"action": "test.capped", "page": 0}).status_code == 404
    small = api_client.get(EVENTS, {"action": "test.capped", "page_size": 2, "page": 2}).json()
    assert small["previous"]
    monkeypatch.setattr(paging, "COUNT_CAP", 10)
    counted = api_client.get(EVENTS, {"action": "test.capped"}).json()
    assert (counted["count"], counted["count_exact"], counted["next"]) == (5, True, None)
