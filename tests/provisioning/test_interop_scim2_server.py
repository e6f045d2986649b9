"""End to end with a peer nobody here wrote: the portal's admin API -> a real worker -> scim2-server.

Changes are made through the admin API (`api_client`) only; the downstream state is read back
through scim2-server's own SCIM API. scim2-server is lenient (traps.md: it keeps deleted users in
groups and accepts members that match no user), so the tests assert what a strict app would need:
members removed explicitly, members that exist.
"""

import pytest

from tests.provisioning.helpers import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _create_connector(api_client, scim, *, deprovision):
    operations = ["create_users", "update_users", "deactivate_users", "push_groups"]
    if deprovision == "delete":
        operations.append("delete_users")
    response = api_client.post(
        "/api/v1/connectors",
        {
            "template": "generic-scim",
            "name": f"scim2-server ({deprovision})",
            "enabled": True,
            "provisioning": {
                "enabled": True,
                "base_url": scim.base_url,
                "token": scim.token,
                "operations": operations,
                "deprovision": deprovision,
                "rate_limit_per_second": 0,
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _create_user(api_client, username, **fields):
    body = {"username": username, "email": f"{username}@example.com", "first_name": username.title(), **fields}
    response = api_client.post("/api/v1/users", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _ok(response, status=(200, 201, 204)):
    assert response.status_code in status, response.content
    return response


def _user_where(scim, user_name, condition):
    def check():
        user = scim.user_by_name(user_name)
        return user if user is not None and condition(user) else None

    return check


def _settled(api_client, connector):
    """The provisioning state once the worker has recorded everything it sent."""

    def check():
        state = _ok(api_client.get(f"/api/v1/connectors/{connector}/provisioning")).json()
        busy = state["counts"]["waiting"] or any(o["status"] == "pending" for o in state["results"])
        return None if busy else state

    return check


def _members(scim, display_name):
    group = next((g for g in scim.groups() if g.get("displayName") == display_name), None)
    if group is None:
        return None
    return {member["value"] for member in group.get("members") or []}


def test_users_end_to_end(scim_downstream, celery_worker_process, api_client):
    scim = scim_downstream
    connector = _create_connector(api_client, scim, deprovision="deactivate")
    alice = _create_user(api_client, "alice", last_name="Liddell", employee_id="E-1")

    assignment = _ok(api_client.post(f"/api/v1/connectors/{connector}/assignments", {"user": alice}, format="json"))
    created = wait_until(_user_where(scim, "alice", lambda u: u.get("active") is True), message="alice created")
    assert created["externalId"] == "E-1"
    assert created["name"] == {"givenName": "Alice", "familyName": "Liddell", "formatted": "Alice Liddell"}
    assert created["displayName"] == "Alice Liddell"
    assert [(e["value"], e.get("type")) for e in created["emails"]] == [("alice@example.com", "work")]

    _ok(api_client.patch(f"/api/v1/users/{alice}", {"last_name": "Hargreaves"}, format="json"))
    wait_until(
        _user_where(scim, "alice", lambda u: u["name"]["familyName"] == "Hargreaves"), message="alice's new name"
    )

    _ok(api_client.patch(f"/api/v1/users/{alice}", {"status": "suspended"}, format="json"))
    wait_until(_user_where(scim, "alice", lambda u: u.get("active") is False), message="alice suspended")
    _ok(api_client.patch(f"/api/v1/users/{alice}", {"status": "active"}, format="json"))
    wait_until(_user_where(scim, "alice", lambda u: u.get("active") is True), message="alice reactivated")

    _ok(api_client.delete(f"/api/v1/connectors/{connector}/assignments/{assignment.json()['id']}"))
    wait_until(_user_where(scim, "alice", lambda u: u.get("active") is False), message="alice unassigned")
    _ok(api_client.post(f"/api/v1/connectors/{connector}/assignments", {"user": alice}, format="json"))
    wait_until(_user_where(scim, "alice", lambda u: u.get("active") is True), message="alice assigned again")

    _ok(api_client.delete(f"/api/v1/users/{alice}"))
    final = wait_until(_user_where(scim, "alice", lambda u: u.get("active") is False), message="alice deleted")

    assert final["id"] == created["id"]
    assert [u["userName"] for u in scim.users()] == ["alice"]  # one account all along, never a duplicate
    state = wait_until(_settled(api_client, connector), message="the worker's bookkeeping")
    assert [(o["label"], o["status"]) for o in state["results"]] == [("alice", "deprovisioned")]


def test_groups_end_to_end(scim_downstream, celery_worker_process, api_client):
    scim = scim_downstream
    connector = _create_connector(api_client, scim, deprovision="delete")
    bob, carol, dave = (_create_user(api_client, name) for name in ("bob", "carol", "dave"))
    group = _ok(api_client.post("/api/v1/groups", {"name": "Engineering", "members": [bob, carol]}, format="json"))
    group_id = group.json()["id"]

    _ok(api_client.post(f"/api/v1/connectors/{connector}/assignments", {"group": group_id}, format="json"))

    def remote_id(name):
        user = scim.user_by_name(name)
        return user["id"] if user else None

    wait_until(lambda: remote_id("bob") and remote_id("carol"), message="the members created")
    wait_until(
        lambda: _members(scim, "Engineering") == {remote_id("bob"), remote_id("carol")}, message="the group created"
    )
    engineering = next(g for g in scim.groups() if g["displayName"] == "Engineering")

    _ok(api_client.patch(f"/api/v1/groups/{group_id}", {"name": "Platform"}, format="json"))
    wait_until(lambda: _members(scim, "Platform") is not None, message="the rename")
    assert [g["id"] for g in scim.groups()] == [engineering["id"]]

    _ok(api_client.post(f"/api/v1/groups/{group_id}/members", {"user": dave}, format="json"))
    wait_until(
        lambda: _members(scim, "Platform") == {remote_id("bob"), remote_id("carol"), remote_id("dave")},
        message="dave added",
    )

    carol_remote = remote_id("carol")
    _ok(api_client.delete(f"/api/v1/groups/{group_id}/members/{carol}"))
    # carol had access only through the group: deleted (this connector deletes), and removed from
    # the group explicitly (scim2-server would keep a deleted user in its groups).
    wait_until(lambda: remote_id("carol") is None, message="carol deprovisioned")
    wait_until(lambda: carol_remote not in _members(scim, "Platform"), message="carol removed from the group")
    assert _members(scim, "Platform") == {remote_id("bob"), remote_id("dave")}

    _ok(api_client.delete(f"/api/v1/groups/{group_id}"))
    wait_until(lambda: scim.groups() == [], message="the group deleted")
    wait_until(lambda: scim.users() == [], message="its members deprovisioned")
    state = wait_until(_settled(api_client, connector), message="the worker's bookkeeping")
    assert {o["status"] for o in state["results"]} == {"deprovisioned"}
