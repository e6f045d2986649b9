"""/api/v1/groups and /api/v1/groups/{id}/members through a real bearer token."""

import uuid

import pytest
from django.utils.dateparse import parse_datetime

from apps.audit.models import AuditEvent
from apps.directory.models import Group, Membership, User
from tests.factories import GroupFactory, UserFactory

# A well-formed id that no row has (fixed, so that xdist workers collect the same test ids).
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
GROUPS = "/api/v1/groups"
GROUP_FIELDS = {"id", "name", "description", "members", "member_count", "rule_based", "created", "updated"}
MEMBER_FIELDS = {"id", "username", "email", "display_name", "status"}


def _url(group_or_id, suffix: str = "", *, slash: bool = False) -> str:
    pk = getattr(group_or_id, "pk", group_or_id)
    return f"{GROUPS}/{pk}{suffix}" + ("/" if slash else "")


def _members_url(group, user=None, *, slash: bool = False) -> str:
    suffix = "/members" if user is None else f"/members/{getattr(user, 'pk', user)}"
    return _url(group, suffix, slash=slash)


def _events(action: str, group) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(group.pk)))


class _Snapshot:
    def __init__(self) -> None:
        self.value = self._take()

    @staticmethod
    def _take():
        return (
            list(Group.objects.values_list("id", "name", "description").order_by("id")),
            sorted(Membership.objects.values_list("group_id", "user_id")),
            AuditEvent.objects.count(),
        )

    def assert_unchanged(self) -> None:
        assert self._take() == self.value


# --- list / retrieve -----------------------------------------------------------------------------


def test_list_is_paginated_with_exact_fields(api_client):
    alice, bob = UserFactory(), UserFactory()
    GroupFactory(name="Beta", members=[alice, bob])
    GroupFactory(name="Alpha", description="First")

    response = api_client.get(GROUPS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert [item["name"] for item in body["results"]] == ["Alpha", "Beta"]
    for item in body["results"]:
        assert set(item) == GROUP_FIELDS
    beta = next(item for item in body["results"] if item["name"] == "Beta")
    assert sorted(beta["members"]) == sorted([str(alice.pk), str(bob.pk)])
    assert beta["member_count"] == 2
    assert api_client.get(GROUPS + "/").status_code == 200


def test_list_page_size(api_client):
    for index in range(3):
        GroupFactory(name=f"G{index}")
    body = api_client.get(GROUPS, {"page_size": 2}).json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"] is not None


def test_list_filters(api_client):
    alice = UserFactory()
    GroupFactory(name="Engineering", description="Builds", members=[alice])
    GroupFactory(name="Sales", description="Sells things")
    GroupFactory(name="Support", description="Helps people build")

    def names(params):
        response = api_client.get(GROUPS, params)
        assert response.status_code == 200
        return sorted(item["name"] for item in response.json()["results"])

    assert names({"name": "SALES"}) == ["Sales"]
    assert names({"name": "Sal"}) == []
    assert names({"search": "build"}) == ["Engineering", "Support"]
    assert names({"member": str(alice.pk)}) == ["Engineering"]
    assert names({"member": UNKNOWN_ID}) == []


def test_list_member_filter_must_be_a_user_id(api_client):
    response = api_client.get(GROUPS, {"member": "alice"})
    assert response.status_code == 400
    assert "member" in response.json()


def test_retrieve_has_exactly_the_documented_fields(api_client):
    users = [UserFactory(), UserFactory()]
    group = GroupFactory(name="Ops", description="Runs things", members=users)

    response = api_client.get(_url(group))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == GROUP_FIELDS
    assert body["id"] == str(group.pk)
    assert body["name"] == "Ops"
    assert body["description"] == "Runs things"
    assert sorted(body["members"]) == sorted(str(user.pk) for user in users)
    assert body["member_count"] == 2
    group.refresh_from_db()
    assert parse_datetime(body["created"]) == group.created
    assert parse_datetime(body["updated"]) == group.updated
    assert api_client.get(_url(group, slash=True)).json()["id"] == str(group.pk)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("pk", ["not-a-uuid", "1", UNKNOWN_ID])
def test_unknown_or_malformed_id_is_404(api_client, method, pk):
    response = getattr(api_client, method)(_url(pk), {"name": "X"} if method == "patch" else None, format="json")
    assert response.status_code == 404


# --- create --------------------------------------------------------------------------------------


def test_create_with_members_is_201_and_audited(api_client):
    users = [UserFactory(), UserFactory()]

    response = api_client.post(
        GROUPS,
        {"name": " Platform ", "description": "Infra", "members": [str(user.pk) for user in users]},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == GROUP_FIELDS
    assert body["name"] == "Platform"
    assert body["member_count"] == 2
    assert sorted(body["members"]) == sorted(str(user.pk) for user in users)
    group = Group.objects.get(pk=body["id"])
    assert set(group.members.all()) == set(users)
    [created] = _events("group.create", group)
    assert created.actor == api_client.user
    assert created.target_type == "directory.group"
    [added] = _events("group.members.add", group)
    assert len(added.after["added"]) == 2


def test_create_minimal_and_with_trailing_slash(api_client):
    response = api_client.post(GROUPS + "/", {"name": "Empty"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["members"] == []
    assert body["member_count"] == 0
    assert body["description"] == ""
    assert not _events("group.members.add", Group.objects.get(pk=body["id"]))


def test_create_with_duplicate_member_ids_adds_once(api_client):
    user = UserFactory()
    response = api_client.post(GROUPS, {"name": "Dupes", "members": [str(user.pk), str(user.pk)]}, format="json")
    assert response.status_code == 201
    assert response.json()["members"] == [str(user.pk)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "EXISTING"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({}, "name"),
        ({"name": "n" * 151}, "name"),
        ({"name": "Fine", "description": "d" * 2001}, "description"),
        ({"name": "Fine", "id": UNKNOWN_ID}, "id"),
        ({"name": "Fine", "colour": "red"}, "colour"),
        ({"name": "Fine", "member_count": 3}, "member_count"),
        ({"name": "Fine", "members": [UNKNOWN_ID]}, "members"),
        ({"name": "Fine", "members": ["not-a-uuid"]}, "members"),
        ({"name": "Fine", "members": "not-a-list"}, "members"),
    ],
)
def test_create_bad_input_is_400_and_writes_nothing(api_client, payload, field):
    GroupFactory(name="Existing")
    snapshot = _Snapshot()

    response = api_client.post(GROUPS, payload, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    snapshot.assert_unchanged()


def test_create_with_one_unknown_member_names_it_and_writes_nothing(api_client):
    known = UserFactory()
    unknown = uuid.uuid4()
    snapshot = _Snapshot()

    response = api_client.post(GROUPS, {"name": "Partial", "members": [str(known.pk), str(unknown)]}, format="json")

    assert response.status_code == 400
    assert str(unknown) in " ".join(response.json()["members"])
    snapshot.assert_unchanged()


# --- update --------------------------------------------------------------------------------------


def test_patch_rename_is_audited_as_rename(api_client):
    group = GroupFactory(name="Sales")

    response = api_client.patch(_url(group), {"name": "Revenue"}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Revenue"
    assert response.json()["id"] == str(group.pk)
    [event] = _events("group.rename", group)
    assert event.actor == api_client.user
    assert event.before == {"name": "Sales"}
    assert event.after == {"name": "Revenue"}


def test_patch_description_is_audited_as_update(api_client):
    group = GroupFactory(name="Legal")
    response = api_client.patch(_url(group, slash=True), {"description": "Contracts"}, format="json")
    assert response.status_code == 200
    assert response.json()["description"] == "Contracts"
    [event] = _events("group.update", group)
    assert event.after == {"description": "Contracts"}


def test_patch_members_sets_the_exact_list(api_client):
    keep, drop, add = UserFactory(), UserFactory(), UserFactory()
    group = GroupFactory(members=[keep, drop])

    response = api_client.patch(_url(group), {"members": [str(keep.pk), str(add.pk)]}, format="json")

    assert response.status_code == 200
    assert sorted(response.json()["members"]) == sorted([str(keep.pk), str(add.pk)])
    assert response.json()["member_count"] == 2
    assert set(group.members.all()) == {keep, add}
    assert len(_events("group.members.add", group)) == 2  # creation, then this change
    [removed] = _events("group.members.remove", group)
    assert removed.before == {"removed": [{"id": str(drop.pk), "username": drop.username}]}


def test_patch_members_to_empty(api_client):
    group = GroupFactory(members=[UserFactory(), UserFactory()])
    response = api_client.patch(_url(group), {"members": []}, format="json")
    assert response.status_code == 200
    assert response.json()["members"] == []
    assert response.json()["member_count"] == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "taken"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "n" * 151}, "name"),
        ({"description": "d" * 2001}, "description"),
        ({"members": [UNKNOWN_ID]}, "members"),
        ({"name": "Renamed", "members": [UNKNOWN_ID]}, "members"),
        ({"id": UNKNOWN_ID}, "id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_patch_bad_input_is_400_and_changes_nothing(api_client, payload, field):
    GroupFactory(name="Taken")
    group = GroupFactory(name="Mine", members=[UserFactory()])
    snapshot = _Snapshot()

    response = api_client.patch(_url(group), payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    snapshot.assert_unchanged()


# --- delete --------------------------------------------------------------------------------------


def test_delete_is_204_keeps_users_and_is_audited(api_client):
    users = [UserFactory(), UserFactory()]
    group = GroupFactory(members=users)

    response = api_client.delete(_url(group))

    assert response.status_code == 204
    assert not Group.objects.filter(pk=group.pk).exists()
    assert User.objects.filter(pk__in=[user.pk for user in users]).count() == 2
    [event] = _events("group.delete", group)
    assert event.actor == api_client.user
    assert sorted(event.before["members"]) == sorted(str(user.pk) for user in users)
    assert api_client.get(_url(group)).status_code == 404
    assert api_client.delete(_url(group, slash=True)).status_code == 404


# --- members -------------------------------------------------------------------------------------


def test_members_get_lists_user_summaries(api_client):
    zed = UserFactory(username="zed")
    amy = UserFactory(username="amy", email="amy@example.com", first_name="Amy", last_name="Pond")
    UserFactory(username="outsider")
    group = GroupFactory(members=[zed, amy])

    response = api_client.get(_members_url(group))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert [item["username"] for item in body["results"]] == ["amy", "zed"]
    assert body["results"][0] == {
        "id": str(amy.pk),
        "username": "amy",
        "email": "amy@example.com",
        "display_name": "Amy Pond",
        "status": "active",
    }
    assert all(set(item) == MEMBER_FIELDS for item in body["results"])
    assert api_client.get(_members_url(group, slash=True)).json()["count"] == 2


def test_members_post_one_user_is_201_and_idempotent(api_client):
    group = GroupFactory()
    user = UserFactory()

    response = api_client.post(_members_url(group), {"user": str(user.pk)}, format="json")

    assert response.status_code == 201
    assert [item["id"] for item in response.json()] == [str(user.pk)]
    assert set(response.json()[0]) == MEMBER_FIELDS
    assert list(group.members.all()) == [user]

    again = api_client.post(_members_url(group, slash=True), {"user": str(user.pk)}, format="json")

    assert again.status_code == 201
    assert again.json() == []
    assert Membership.objects.filter(group=group, user=user).count() == 1
    [event] = _events("group.members.add", group)
    assert event.actor == api_client.user
    assert event.after == {"added": [{"id": str(user.pk), "username": user.username}]}


def test_members_post_many_users(api_client):
    present = UserFactory()
    new = [UserFactory(), UserFactory()]
    group = GroupFactory(members=[present])

    response = api_client.post(
        _members_url(group), {"users": [str(present.pk)] + [str(user.pk) for user in new]}, format="json"
    )

    assert response.status_code == 201
    assert sorted(item["id"] for item in response.json()) == sorted(str(user.pk) for user in new)
    assert group.members.count() == 3
    assert api_client.get(_url(group)).json()["member_count"] == 3


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "user"),
        ({"user": "not-a-uuid"}, "user"),
        ({"user": UNKNOWN_ID}, "user"),
        ({"users": [UNKNOWN_ID]}, "users"),
        ({"users": []}, "user"),
        ({"users": ["nope"]}, "users"),
        ({"member": "x"}, "member"),
    ],
)
def test_members_post_bad_input_is_400_and_adds_nothing(api_client, payload, field):
    group = GroupFactory()
    UserFactory()
    snapshot = _Snapshot()

    response = api_client.post(_members_url(group), payload, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    snapshot.assert_unchanged()


def test_members_post_with_one_unknown_user_adds_nothing(api_client):
    group = GroupFactory()
    known = UserFactory()
    snapshot = _Snapshot()

    response = api_client.post(_members_url(group), {"users": [str(known.pk), UNKNOWN_ID]}, format="json")

    assert response.status_code == 400
    assert "users" in response.json()
    snapshot.assert_unchanged()


@pytest.mark.parametrize("group_id", ["not-a-uuid", UNKNOWN_ID])
def test_members_of_unknown_group_is_404(api_client, group_id):
    user = UserFactory()
    assert api_client.get(_members_url(group_id)).status_code == 404
    assert api_client.post(_members_url(group_id), {"user": str(user.pk)}, format="json").status_code == 404
    assert api_client.delete(_members_url(group_id, user)).status_code == 404


def test_members_delete_is_204_and_audited(api_client):
    staying, leaving = UserFactory(), UserFactory()
    group = GroupFactory(members=[staying, leaving])

    response = api_client.delete(_members_url(group, leaving))

    assert response.status_code == 204
    assert list(group.members.all()) == [staying]
    assert User.objects.filter(pk=leaving.pk).exists()
    [event] = _events("group.members.remove", group)
    assert event.actor == api_client.user
    assert event.before == {"removed": [{"id": str(leaving.pk), "username": leaving.username}]}


def test_members_delete_with_trailing_slash(api_client):
    user = UserFactory()
    group = GroupFactory(members=[user])
    assert api_client.delete(_members_url(group, user, slash=True)).status_code == 204
    assert not group.members.exists()


def test_members_delete_of_non_member_is_404(api_client):
    group = GroupFactory()
    outsider = UserFactory()
    snapshot = _Snapshot()

    for user_id in (outsider.pk, uuid.uuid4(), "not-a-uuid"):
        response = api_client.delete(_members_url(group, user_id))
        assert response.status_code == 404
        assert "detail" in response.json()

    snapshot.assert_unchanged()


def test_member_count_follows_member_changes(api_client):
    group = GroupFactory()
    users = [UserFactory() for _ in range(3)]
    api_client.post(_members_url(group), {"users": [str(user.pk) for user in users]}, format="json")
    api_client.delete(_members_url(group, users[0]))

    body = api_client.get(_url(group)).json()
    assert body["member_count"] == 2
    assert sorted(body["members"]) == sorted(str(user.pk) for user in users[1:])
    listed = next(item for item in api_client.get(GROUPS).json()["results"] if item["id"] == str(group.pk))
    assert listed["member_count"] == 2
