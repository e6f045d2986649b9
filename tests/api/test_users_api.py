"""/api/v1/users through a real bearer token."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime

from apps.audit.models import AuditEvent
from apps.directory.models import User, UserStatus
from tests.factories import GroupFactory, UserFactory

# A well-formed id that no row has (fixed, so that xdist workers collect the same test ids).
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
USERS = "/api/v1/users"
STRONG_PASSWORD = "Tr0ub4dor-and-horses-42"
USER_FIELDS = {
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "employee_id",
    "status",
    "is_staff",
    "is_superuser",
    "must_change_password",
    "groups",
    "created",
    "updated",
}
# The profile, shown on every user (tests/api/test_profile_api.py).
PROFILE_FIELDS = {
    "email_type",
    "nick_name",
    "title",
    "user_type",
    "preferred_language",
    "locale",
    "timezone",
    "profile_url",
    "emails",
    "phone_numbers",
    "addresses",
    "photos",
    "cost_center",
    "organization",
    "division",
    "department",
    "manager",
    "custom_attributes",
}


def _url(user_or_id, *, slash: bool = False) -> str:
    pk = getattr(user_or_id, "pk", user_or_id)
    return f"{USERS}/{pk}" + ("/" if slash else "")


def _assert_no_password(response, *secrets: str) -> None:
    body = response.content.decode()
    assert '"password"' not in body
    for secret in secrets:
        if secret:
            assert secret not in body


def _events(action: str, user) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(user.pk)))


# --- list ----------------------------------------------------------------------------------------


def test_list_is_paginated_and_ordered_by_username(api_client):
    for name in ["zed", "mike", "anna"]:
        UserFactory(username=name)

    response = api_client.get(USERS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4
    assert body["next"] is None
    assert body["previous"] is None
    assert [item["username"] for item in body["results"]] == ["anna", "mike", "root.admin", "zed"]
    _assert_no_password(response, api_client.user.password)


def test_list_page_size_and_pages(api_client):
    for index in range(4):
        UserFactory(username=f"p{index}")

    first = api_client.get(USERS, {"page_size": 2}).json()
    assert first["count"] == 5
    assert len(first["results"]) == 2
    assert first["next"] is not None
    assert first["previous"] is None

    last = api_client.get(USERS, {"page_size": 2, "page": 3}).json()
    assert [item["username"] for item in last["results"]] == ["root.admin"]
    assert last["next"] is None
    assert last["previous"] is not None

    assert api_client.get(USERS, {"page_size": 2, "page": 9}).status_code == 404


def test_list_accepts_trailing_slash(api_client):
    response = api_client.get(USERS + "/")
    assert response.status_code == 200
    assert response.json()["count"] == 1


@pytest.fixture
def directory(api_client):
    alice = UserFactory(username="alice", email="alice@example.com", first_name="Alice", last_name="Liddell")
    bob = UserFactory(username="bob", email="bob@example.com", first_name="Robert", last_name="Paulson")
    carol = UserFactory(
        username="carol", email="carol@corp.test", first_name="Carol", last_name="Danvers", status="suspended"
    )
    group = GroupFactory(name="Engineering", members=[alice, carol])
    return {"alice": alice, "bob": bob, "carol": carol, "group": group}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"username": "ALICE"}, ["alice"]),
        ({"email": "Bob@Example.com"}, ["bob"]),
        ({"status": "suspended"}, ["carol"]),
        ({"status": "active"}, ["alice", "bob", "root.admin"]),
        ({"status": "staged"}, []),
        ({"group": "engineering"}, ["alice", "carol"]),
        ({"search": "paulson"}, ["bob"]),
        ({"search": "corp.test"}, ["carol"]),
        ({"search": "li", "status": "active"}, ["alice"]),
    ],
)
def test_list_filters(api_client, directory, params, expected):
    response = api_client.get(USERS, params)
    assert response.status_code == 200
    body = response.json()
    assert [item["username"] for item in body["results"]] == expected
    assert body["count"] == len(expected)


def test_list_filter_by_group_id(api_client, directory):
    response = api_client.get(USERS, {"group": str(directory["group"].pk)})
    assert [item["username"] for item in response.json()["results"]] == ["alice", "carol"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "retired"}, "status"),
        ({"group": "No Such Group"}, "group"),
        ({"group": UNKNOWN_ID}, "group"),
    ],
)
def test_list_bad_filters_are_400(api_client, directory, params, field):
    response = api_client.get(USERS, params)
    assert response.status_code == 400
    assert field in response.json()


def test_list_runs_a_constant_number_of_queries(api_client):
    groups = [GroupFactory(name=f"Team {index}") for index in range(3)]

    def add_users(count: int) -> None:
        for _ in range(count):
            user = UserFactory()
            for group in groups[:2]:
                group.members.add(user)

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = api_client.get(USERS, {"page_size": 100})
        assert response.status_code == 200
        return len(captured.captured_queries)

    add_users(2)
    count_queries()  # the token's first use is recorded once
    few = count_queries()
    add_users(28)
    many = count_queries()

    assert many == few
    assert api_client.get(USERS, {"page_size": 100}).json()["count"] == 31


# --- retrieve ------------------------------------------------------------------------------------


def test_retrieve_has_exactly_the_documented_fields(api_client):
    user = UserFactory(
        username="dora",
        email="dora@example.com",
        first_name="Dora",
        last_name="Explorer",
        employee_id="E42",
        is_staff=True,
        password=STRONG_PASSWORD,
    )
    groups = [GroupFactory(name="Alpha", members=[user]), GroupFactory(name="Beta", members=[user])]

    response = api_client.get(_url(user))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_FIELDS | PROFILE_FIELDS
    assert body["id"] == str(user.pk)
    assert {key: body[key] for key in USER_FIELDS - {"id", "groups", "created", "updated"}} == {
        "username": "dora",
        "email": "dora@example.com",
        "first_name": "Dora",
        "last_name": "Explorer",
        "display_name": "Dora Explorer",
        "employee_id": "E42",
        "status": "active",
        "is_staff": True,
        "is_superuser": False,
        "must_change_password": False,
    }
    assert body["groups"] == [{"id": str(group.pk), "name": group.name} for group in groups]
    user.refresh_from_db()
    assert parse_datetime(body["created"]) == user.created
    assert parse_datetime(body["updated"]) == user.updated
    _assert_no_password(response, user.password, STRONG_PASSWORD)


def test_retrieve_accepts_trailing_slash(api_client):
    user = UserFactory()
    assert api_client.get(_url(user, slash=True)).json()["id"] == str(user.pk)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("pk", ["not-a-uuid", "12345", UNKNOWN_ID])
def test_unknown_or_malformed_id_is_404(api_client, method, pk):
    response = getattr(api_client, method)(_url(pk), {"first_name": "X"} if method == "patch" else None, format="json")
    assert response.status_code == 404
    assert "detail" in response.json()


# --- create --------------------------------------------------------------------------------------


def test_create_returns_201_with_the_user_and_audits(api_client):
    payload = {
        "username": "erin",
        "email": "Erin@Example.COM",
        "first_name": "Erin",
        "last_name": "Gilbert",
        "employee_id": "E7",
        "password": STRONG_PASSWORD,
        "is_staff": True,
    }

    response = api_client.post(USERS, payload, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == USER_FIELDS | PROFILE_FIELDS
    user = User.objects.get(pk=body["id"])
    assert body["username"] == "erin"
    assert body["email"] == "Erin@example.com"
    assert body["display_name"] == "Erin Gilbert"
    assert body["status"] == "active"
    assert body["is_staff"] is True
    assert body["is_superuser"] is False
    assert body["groups"] == []
    assert user.check_password(STRONG_PASSWORD)
    _assert_no_password(response, user.password, STRONG_PASSWORD)
    [event] = _events("user.create", user)
    assert event.actor == api_client.user
    assert event.target_type == "directory.user"
    assert "password" not in event.after


def test_create_minimal_and_with_trailing_slash(api_client):
    response = api_client.post(USERS + "/", {"username": "frank"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == ""
    assert body["display_name"] == ""
    assert not User.objects.get(pk=body["id"]).has_usable_password()


def test_create_suspended_or_staged(api_client):
    assert api_client.post(USERS, {"username": "s1", "status": "suspended"}, format="json").json()["status"] == (
        "suspended"
    )
    assert api_client.post(USERS, {"username": "s2", "status": "staged"}, format="json").json()["status"] == "staged"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "ROOT.ADMIN"}, "username"),
        ({"username": "gina", "email": "not-an-email"}, "email"),
        ({"username": "gina", "id": UNKNOWN_ID}, "id"),
        ({"username": "gina", "colour": "blue"}, "colour"),
        ({"username": "gina", "created": "2020-01-01T00:00:00Z"}, "created"),
        ({"username": "gina", "groups": []}, "groups"),
        ({"username": "gina", "status": "retired"}, "status"),
        ({"username": "u" * 151}, "username"),
        ({"username": "gina", "first_name": "f" * 151}, "first_name"),
        ({"username": "gina", "last_name": "l" * 151}, "last_name"),
        ({"username": "gina", "display_name": "d" * 256}, "display_name"),
        ({"username": "gina", "employee_id": "e" * 65}, "employee_id"),
        ({"username": "gina", "email": "a" * 250 + "@example.com"}, "email"),
        ({"username": "gina", "password": "p" * 257}, "password"),
        ({"username": "has space"}, "username"),
        ({"username": ""}, "username"),
        ({}, "username"),
        ({"username": "gina", "password": "short"}, "password"),
        ({"username": "gina", "is_staff": "maybe"}, "is_staff"),
    ],
)
def test_create_bad_input_is_400_naming_the_field(api_client, payload, field):
    users_before = User.objects.count()
    events_before = AuditEvent.objects.count()

    response = api_client.post(USERS, payload, format="json")

    assert response.status_code == 400
    body = response.json()
    assert field in body, body
    assert isinstance(body[field], list)
    assert User.objects.count() == users_before
    assert AuditEvent.objects.count() == events_before


def test_create_duplicate_email_case_insensitive_is_400(api_client):
    UserFactory(username="harry", email="harry@example.com")
    response = api_client.post(USERS, {"username": "harold", "email": "HARRY@example.com"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["email"]


def test_create_reports_all_unknown_fields_together(api_client):
    response = api_client.post(USERS, {"username": "x", "id": "1", "colour": "red"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"id", "colour"}


def test_create_rejects_non_json_and_non_object_bodies(api_client):
    assert api_client.post(USERS, "username=x", content_type="application/x-www-form-urlencoded").status_code == 415
    assert api_client.post(USERS, ["x"], format="json").status_code == 400


# --- update --------------------------------------------------------------------------------------


def test_patch_profile_fields_and_audit(api_client):
    user = UserFactory(username="ivan", first_name="Ivan", last_name="Petrov", email="ivan@example.com")
    original_id = user.pk

    response = api_client.patch(_url(user), {"last_name": "Ivanov", "email": "IVAN@corp.test"}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == USER_FIELDS | PROFILE_FIELDS
    assert body["id"] == str(original_id)
    assert body["last_name"] == "Ivanov"
    assert body["email"] == "IVAN@corp.test"
    assert body["display_name"] == "Ivan Ivanov"
    [event] = _events("user.update", user)
    assert event.actor == api_client.user
    assert event.before == {"last_name": "Petrov", "email": "ivan@example.com", "display_name": "Ivan Petrov"}
    assert event.after == {"last_name": "Ivanov", "email": "IVAN@corp.test", "display_name": "Ivan Ivanov"}


def test_patch_with_trailing_slash(api_client):
    user = UserFactory()
    response = api_client.patch(_url(user, slash=True), {"employee_id": "X9"}, format="json")
    assert response.status_code == 200
    assert response.json()["employee_id"] == "X9"


@pytest.mark.parametrize(
    ("start", "new", "action"),
    [
        ("active", "suspended", "user.suspend"),
        ("suspended", "active", "user.reactivate"),
        ("active", "staged", "user.stage"),
    ],
)
def test_patch_status_goes_through_status_services(api_client, start, new, action):
    user = UserFactory(status=start)

    response = api_client.patch(_url(user), {"status": new}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == new
    user.refresh_from_db()
    assert user.status == new
    [event] = _events(action, user)
    assert event.actor == api_client.user
    assert event.before == {"status": start}
    assert event.after == {"status": new}
    assert not _events("user.update", user)


def test_patch_same_status_is_a_no_op(api_client):
    user = UserFactory(status=UserStatus.SUSPENDED)
    events_before = AuditEvent.objects.count()
    response = api_client.patch(_url(user), {"status": "suspended"}, format="json")
    assert response.status_code == 200
    assert AuditEvent.objects.count() == events_before


def test_patch_password_sets_it_without_echoing_it(api_client):
    user = UserFactory()

    response = api_client.patch(_url(user), {"password": STRONG_PASSWORD}, format="json")

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    _assert_no_password(response, user.password, STRONG_PASSWORD)
    [event] = _events("user.set_password", user)
    assert event.before is None
    assert event.after == {"temporary": True}  # set by an admin: temporary (issue 14)
    assert user.must_change_password


def test_patch_weak_password_is_400_and_keeps_the_old_one(api_client):
    user = UserFactory(password=STRONG_PASSWORD)
    response = api_client.patch(_url(user), {"password": "12345"}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert not _events("user.set_password", user)


def test_patch_with_bad_password_changes_nothing(api_client):
    user = UserFactory(first_name="Jane", last_name="Roe")

    response = api_client.patch(_url(user), {"first_name": "Janet", "password": "12345"}, format="json")

    assert response.status_code == 400
    user.refresh_from_db()
    assert user.first_name == "Jane"
    assert not _events("user.update", user)


def test_patch_refused_status_change_changes_nothing(api_client):
    admin = api_client.user

    response = api_client.patch(_url(admin), {"first_name": "Changed", "status": "suspended"}, format="json")

    assert response.status_code == 400
    admin.refresh_from_db()
    assert admin.first_name != "Changed"
    assert not _events("user.update", admin)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"id": UNKNOWN_ID}, "id"),
        ({"colour": "blue"}, "colour"),
        ({"status": "retired"}, "status"),
        ({"email": "nope"}, "email"),
        ({"first_name": "f" * 151}, "first_name"),
        ({"username": "with space"}, "username"),
        ({"username": "ROOT.admin"}, "username"),
        ({"username": ""}, "username"),
    ],
)
def test_patch_bad_input_is_400_and_changes_nothing(api_client, payload, field):
    user = UserFactory(username="kate", email="kate@example.com", first_name="Kate")
    events_before = AuditEvent.objects.count()

    response = api_client.patch(_url(user), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    user.refresh_from_db()
    assert (user.username, user.email, user.first_name) == ("kate", "kate@example.com", "Kate")
    assert AuditEvent.objects.count() == events_before


def test_patch_cannot_suspend_or_demote_the_last_superadmin(api_client):
    admin = api_client.user

    for payload in ({"status": "suspended"}, {"status": "staged"}, {"is_superuser": False}):
        response = api_client.patch(_url(admin), payload, format="json")
        assert response.status_code == 400
        assert response.json()["code"] == "last_superadmin"

    admin.refresh_from_db()
    assert admin.is_superuser
    assert admin.status == "active"


def test_patch_demote_allowed_when_another_superadmin_exists(api_client):
    other = UserFactory(is_staff=True, is_superuser=True)
    response = api_client.patch(_url(other), {"is_superuser": False}, format="json")
    assert response.status_code == 200
    assert response.json()["is_superuser"] is False


# --- delete --------------------------------------------------------------------------------------


def test_delete_is_204_and_audited(api_client):
    user = UserFactory()
    group = GroupFactory(members=[user])

    response = api_client.delete(_url(user))

    assert response.status_code == 204
    assert response.content == b""
    assert not User.objects.filter(pk=user.pk).exists()
    assert group.members.count() == 0
    [event] = _events("user.delete", user)
    assert event.actor == api_client.user
    assert event.before["groups"] == [str(group.pk)]
    assert api_client.delete(_url(user)).status_code == 404
    assert api_client.get(_url(user)).status_code == 404


def test_delete_with_trailing_slash(api_client):
    user = UserFactory()
    assert api_client.delete(_url(user, slash=True)).status_code == 204


def test_delete_last_superadmin_is_refused(api_client):
    admin = api_client.user
    response = api_client.delete(_url(admin))
    assert response.status_code == 400
    assert response.json()["code"] == "last_superadmin"
    assert User.objects.filter(pk=admin.pk).exists()


def test_password_never_appears_in_any_user_response(api_client):
    created = api_client.post(USERS, {"username": "leo", "password": STRONG_PASSWORD}, format="json")
    user = User.objects.get(username="leo")
    responses = [
        created,
        api_client.get(USERS),
        api_client.get(_url(user)),
        api_client.patch(_url(user), {"password": "An0ther-long-secret!"}, format="json"),
        api_client.get("/api/v1/audit-events"),
    ]
    user.refresh_from_db()
    for response in responses:
        assert response.status_code in (200, 201)
        _assert_no_password(response, user.password, STRONG_PASSWORD, "An0ther-long-secret!")


def test_a_search_lists_its_matches_in_username_order(api_client):
    for name in ("zoe.search", "Adam.search", "mia.search", "unrelated"):
        UserFactory(username=name)
    body = api_client.get("/api/v1/users", {"search": "search"}).json()
    assert [user["username"] for user in body["results"]] == ["Adam.search", "mia.search", "zoe.search"]
    assert body["count"] == 3
