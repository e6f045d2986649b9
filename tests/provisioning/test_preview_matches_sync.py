"""The dry-run preview is what a sync then sends, over randomized directories and settings.

Each example (a fixed seed, so a failure replays) builds a directory, syncs it a few times with
random settings while it changes (so links are created, deactivated, deleted, skipped and left
stale), changes it again, sets random operations, deprovision mode, update method and
unmanaged-user handling, then takes the preview page by page, runs the sync against the strict
downstream of tests/provisioning/downstream.py, and compares the preview with the requests the
downstream received: method, path and body (a group's members by directory id).
"""

import json
import random
from typing import Any

import pytest

from apps.connectors import services as connector_services
from apps.directory import services as directory
from apps.directory.models import User
from apps.provisioning import services, unmanaged
from apps.provisioning.models import ObjectType, RemoteObject
from apps.provisioning.preview import preview_sync
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, sync, unassign

pytestmark = pytest.mark.django_db

EXAMPLES = 24
OPERATIONS = ["create_users", "update_users", "deactivate_users", "delete_users", "push_groups"]


class Example:
    """One randomized directory and connector, driven by `rng` alone."""

    def __init__(self, seed: int, downstream: Any) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.downstream = downstream
        self.serial = 0
        self.connector = make_connector(downstream, deprovision_threshold_count=1000)
        self.users: list[User] = []
        self.groups: list = []
        for _ in range(self.rng.randint(5, 12)):
            self.new_user()
        for _ in range(self.rng.randint(2, 4)):
            self.new_group()
        for _ in range(self.rng.randint(0, 3)):
            self.serial += 1
            downstream.seed_user(f"app-only-{seed}-{self.serial}", active=self.rng.random() < 0.7)

    def name(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}{self.seed}x{self.serial}"

    def new_user(self) -> User:
        user = UserFactory(
            username=self.name("u"), first_name=self.rng.choice(["Ann", "Bo", "Cy"]), last_name=self.name("L")
        )
        if self.rng.random() < 0.2:
            directory.user_suspend(actor=None, user=user)
        if self.rng.random() < 0.5:
            assign(self.connector, user=user)
        self.users.append(user)
        return user

    def live_users(self) -> list[User]:
        alive = set(User.objects.filter(pk__in=[user.pk for user in self.users]).values_list("pk", flat=True))
        return [user for user in self.users if user.pk in alive]

    def new_group(self) -> None:
        members = [user for user in self.live_users() if self.rng.random() < 0.5]
        group = GroupFactory(name=self.name("Team "), members=members)
        if self.rng.random() < 0.7:
            assign(self.connector, group=group)
        self.groups.append(group)

    def assignment(self, move: str, *, user=None, group=None) -> None:
        """Assign, or unassign, when that changes something."""
        assigned = self.connector.assignments.filter(user=user, group=group).exists()
        if move == "assign" and not assigned:
            assign(self.connector, user=user, group=group)
        elif move == "unassign" and assigned:
            unassign(self.connector, user=user, group=group)

    def change(self) -> None:
        """A few random directory changes, each through the directory's and connectors' services."""
        rng = self.rng
        for _ in range(rng.randint(4, 10)):
            live = self.live_users()
            user = rng.choice(live) if live else self.new_user()
            group = rng.choice(self.groups) if self.groups else None
            move = rng.choice(
                ["rename", "suspend", "reactivate", "assign", "unassign", "delete", "new_user", "join", "leave",
                 "rename_group", "assign_group", "unassign_group", "delete_group", "new_group"]
            )  # fmt: skip
            if move == "rename":
                directory.user_update(actor=None, user=user, last_name=self.name("L"))
            elif move == "suspend":
                directory.user_suspend(actor=None, user=user)
            elif move == "reactivate":
                directory.user_reactivate(actor=None, user=user)
            elif move in ("assign", "unassign"):
                self.assignment(move, user=user)
            elif move == "delete":
                directory.user_delete(actor=None, user=user)
            elif move == "new_user":
                self.new_user()
            elif move == "new_group":
                self.new_group()
            elif group is None:
                continue
            elif move == "join":
                directory.group_add_members(actor=None, group=group, users=[user])
            elif move == "leave":
                directory.group_remove_members(actor=None, group=group, users=[user])
            elif move == "rename_group":
                directory.group_update(actor=None, group=group, name=self.name("Team "))
            elif move in ("assign_group", "unassign_group"):
                self.assignment(move.removesuffix("_group"), group=group)
            elif move == "delete_group":
                directory.group_delete(actor=None, group=group)
                self.groups.remove(group)

    def configure(self) -> None:
        rng = self.rng
        settings = {
            "operations": [operation for operation in OPERATIONS if rng.random() < 0.6],
            "deprovision": rng.choice(["deactivate", "delete"]),
            "update_method": rng.choice(["patch", "put"]),
            "deprovision_unmanaged": rng.random() < 0.4,
        }
        connector_services.connector_update(actor=None, connector=self.connector, provisioning=settings)
        self.connector.refresh_from_db()
        self.connector.provisioning.refresh_from_db()


def _preview(connector, page_size: int) -> dict[str, Any]:
    """Every page of the preview, joined."""
    first = preview_sync(connector, page_size=page_size).as_dict()
    joined = {name: list(first[name]) for name in first["summary"]}
    for number in range(2, first["page"]["pages"] + 1):
        page = preview_sync(connector, page=number, page_size=page_size).as_dict()
        for name in joined:
            joined[name] += page[name]
    return {**first, **joined, "summary": {name: len(entries) for name, entries in joined.items()}}


def _canonical(entry: tuple) -> str:
    return json.dumps(entry, sort_keys=True)


def _expected(preview: dict[str, Any]) -> list[str]:
    expected = []
    for name in ("creates", "updates", "deactivations", "deletions", "unmanaged"):
        for entry in preview[name]:
            request = entry["request"]
            expected.append((request["method"], request["path"], request["body"]))
    for entry in preview["group_creates"]:
        body = {**entry["request"]["body"], "members": sorted(entry["add"])}
        expected.append(("POST", "/Groups", body))
    for entry in preview["membership_changes"]:
        request = entry["request"]
        if request["method"] == "PUT":
            expected.append(
                ("PUT", request["path"], {"displayName": entry["displayName"], "members": entry["members"]})
            )
        else:
            body = {"attributes": entry["operations"], "add": sorted(entry["add"]), "remove": sorted(entry["remove"])}
            expected.append(("PATCH", request["path"], body))
    for entry in preview["group_deletes"]:
        expected.append(("DELETE", entry["request"]["path"], None))
    return sorted(_canonical(entry) for entry in expected)


def _received(downstream, connector) -> list[str]:
    """The writes the app received, a group's members translated back to directory ids."""
    directory_id = dict(
        RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER)
        .exclude(remote_id="")
        .values_list("remote_id", "object_id")
    )

    def member(remote_id: str) -> str:
        return str(directory_id[remote_id])

    received = []
    for request in downstream.writes():
        body = request.body
        if request.path.startswith("/Users"):
            if request.method == "PUT":
                body = {key: value for key, value in body.items() if key != "id"}
            received.append((request.method, request.path, body))
        elif request.method == "POST":
            members = sorted(member(m["value"]) for m in body.pop("members", []))
            received.append(("POST", "/Groups", {**body, "members": members}))
        elif request.method == "PUT":
            members = sorted(member(m["value"]) for m in body.get("members", []))
            received.append(("PUT", request.path, {"displayName": body["displayName"], "members": members}))
        elif request.method == "PATCH":
            operations = body["Operations"]
            added = [m["value"] for op in operations if op["path"] == "members" for m in op["value"]]
            removed = [op["path"].split('"')[1] for op in operations if op["path"].startswith("members[")]
            attributes = [op for op in operations if not op["path"].startswith("members")]
            received.append(
                (
                    "PATCH",
                    request.path,
                    {
                        "attributes": attributes,
                        "add": sorted(member(value) for value in added),
                        "remove": sorted(member(value) for value in removed),
                    },
                )
            )
        else:
            received.append((request.method, request.path, None))
    return sorted(_canonical(entry) for entry in received)


@pytest.mark.parametrize("seed", range(EXAMPLES))
def test_the_preview_lists_exactly_what_the_sync_then_sends(downstream, seed):
    example = Example(seed, downstream)
    for _ in range(3):  # links in every state: synced, skipped, deactivated, deleted, stale groups
        example.configure()
        sync(example.connector)
        example.change()
    example.configure()
    connector = example.connector

    preview = _preview(connector, page_size=example.rng.choice([3, 7, 200]))
    downstream.reset_log()
    services.connector_sync(actor=None, connector=connector)
    sync(connector)
    if connector.provisioning.deprovision_unmanaged:
        unmanaged.reconcile_unmanaged(connector.pk)  # the task connector_sync enqueues on commit

    assert preview["errors"] == [] and preview["held"] is None and preview["blocked"] == ""
    assert _received(downstream, connector) == _expected(preview)
    assert all(request.status < 300 for request in downstream.calls())  # nothing refused, nothing retried
    # and a second preview finds nothing left to send but what the switches hold back
    again = _preview(connector, page_size=200)
    assert again["summary"] == {**dict.fromkeys(again["summary"], 0), "skipped": again["summary"]["skipped"]}
