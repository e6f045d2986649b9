"""A fast in-memory SCIM app for bench/provisioning_scale.py, run in a process of its own.

It answers what the provisioning engine sends (users: POST, lookups by `userName eq` / `externalId
eq`, a count, PATCH, PUT, DELETE; groups: lookup by `displayName eq`, POST, PATCH add/remove of
members, PUT, DELETE) and counts, per user and per group, what reached it: POSTs per userName (a
user created twice shows), PATCHes per group, the largest member list in one request, and member
values sent more than once (a resent chunk shows). `GET /_stats` returns the counts.

    python bench/provisioning_scale_downstream.py PORT TOKEN   (started by the benchmark)

Run without arguments it does nothing (`make bench` runs every bench/*.py).
"""

import json
import re
import sys
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_EQ_FILTER = re.compile(r'^\s*(userName|externalId|displayName)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_MEMBER_PATH = re.compile(r'^members\[value eq "([^"]+)"\]$')


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, dict] = {}
        self.by_name: dict[str, str] = {}
        self.by_external: dict[str, str] = {}
        self.groups: dict[str, dict] = {}  # id -> {"displayName", "members": set}
        self.group_by_name: dict[str, str] = {}
        self.requests: Counter = Counter()  # "POST /Users" -> n
        self.creates: Counter = Counter()  # userName -> POSTs that reached the app
        self.group_patches: Counter = Counter()  # displayName -> PATCH requests
        self.group_largest_request: Counter = Counter()  # displayName -> most members in one request
        self.member_sends: dict[str, Counter] = {}  # displayName -> member value -> times sent in an add

    def stats(self) -> dict:
        with self.lock:
            return {
                "requests": dict(self.requests),
                "users": len(self.users),
                "creates": sum(self.creates.values()),
                "users_created_more_than_once": sum(1 for n in self.creates.values() if n > 1),
                "groups": {
                    group["displayName"]: {
                        "members": len(group["members"]),
                        "patches": self.group_patches[group["displayName"]],
                        "largest_request": self.group_largest_request[group["displayName"]],
                        "resent_members": sum(
                            n - 1 for n in self.member_sends.get(group["displayName"], Counter()).values() if n > 1
                        ),
                    }
                    for group in self.groups.values()
                },
            }

    def note_members(self, name: str, values: list[str]) -> None:
        sends = self.member_sends.setdefault(name, Counter())
        sends.update(values)
        self.group_largest_request[name] = max(self.group_largest_request[name], len(values))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else keep-alive answers come about 40 ms late
    store: Store
    token: str

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _error(self, status: int, detail: str, scim_type: str = "") -> None:
        body = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
        if scim_type:
            body["scimType"] = scim_type
        self._send(status, body)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.split("/") if part]
        if parts == ["_stats"]:
            self._send(200, self.store.stats())
            return
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._error(401, "Bad token")
            return
        if not parts or parts[0] not in ("Users", "Groups"):
            self._error(404, "Not found")
            return
        kind = parts[0]
        with self.store.lock:
            self.store.requests[f"{method} /{kind}" + ("/{id}" if len(parts) > 1 else "")] += 1
        if len(parts) == 1 and method == "GET":
            self._search(kind, parse_qs(url.query))
        elif len(parts) == 1 and method == "POST":
            (self._create_user if kind == "Users" else self._create_group)(body)
        elif len(parts) == 2 and kind == "Users":
            self._user(method, parts[1], body)
        elif len(parts) == 2:
            self._group(method, parts[1], body)
        else:
            self._error(404, "Not found")

    def _search(self, kind: str, query: dict) -> None:
        store, scim_filter = self.store, (query.get("filter") or [""])[0]
        with store.lock:
            if not scim_filter:
                total = len(store.users if kind == "Users" else store.groups)
                found = []
            else:
                match = _EQ_FILTER.match(scim_filter)
                if not match:
                    self._error(400, "Unsupported filter", "invalidFilter")
                    return
                attribute, value = match.group(1).lower(), match.group(2).replace('\\"', '"').replace("\\\\", "\\")
                if kind == "Users":
                    index = store.by_name if attribute == "username" else store.by_external
                    found_id = index.get(value.lower() if attribute == "username" else value)
                    found = [store.users[found_id]] if found_id else []
                else:
                    found_id = store.group_by_name.get(value)
                    found = [self._group_resource(found_id)] if found_id else []
                total = len(found)
        self._send(200, {"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": 1,
                         "itemsPerPage": len(found), "Resources": found})  # fmt: skip

    def _create_user(self, body: dict) -> None:
        name = str(body.get("userName") or "")
        store = self.store
        with store.lock:
            store.creates[name.lower()] += 1
            if name.lower() in store.by_name:
                conflict, user = True, None
            else:
                conflict, remote_id = False, uuid.uuid4().hex
                user = {**body, "id": remote_id}
                store.users[remote_id] = user
                store.by_name[name.lower()] = remote_id
                if body.get("externalId"):
                    store.by_external[str(body["externalId"])] = remote_id
        if conflict:
            self._error(409, f"userName {name} is taken", "uniqueness")
        else:
            self._send(201, user)

    def _user(self, method: str, remote_id: str, body: dict) -> None:
        store = self.store
        with store.lock:
            user = store.users.get(remote_id)
            if user is not None and method == "PATCH":
                for operation in body.get("Operations", []):
                    if operation.get("op", "").lower() == "replace" and operation.get("path"):
                        user[operation["path"]] = operation.get("value")
            elif user is not None and method == "PUT":
                user = store.users[remote_id] = {**body, "id": remote_id}
            elif user is not None and method == "DELETE":
                store.users.pop(remote_id)
                store.by_name.pop(str(user.get("userName", "")).lower(), None)
        if user is None:
            self._error(404, "No such user")
        else:
            self._send(204 if method == "DELETE" else 200, None if method == "DELETE" else user)

    def _group_resource(self, group_id: str) -> dict:
        group = self.store.groups[group_id]
        return {"id": group_id, "displayName": group["displayName"],
                "members": [{"value": value} for value in sorted(group["members"])]}  # fmt: skip

    def _create_group(self, body: dict) -> None:
        name = str(body.get("displayName") or "")
        store = self.store
        with store.lock:
            if name in store.group_by_name:
                self._error(409, f"group {name} exists", "uniqueness")
                return
            group_id = uuid.uuid4().hex
            values = [member["value"] for member in body.get("members") or []]
            store.groups[group_id] = {"displayName": name, "members": set(values)}
            store.group_by_name[name] = group_id
            store.note_members(name, values)
        self._send(201, {"id": group_id, "displayName": name})

    def _group(self, method: str, group_id: str, body: dict) -> None:
        store = self.store
        with store.lock:
            group = store.groups.get(group_id)
            if group is None:
                self._error(404, "No such group")
                return
            name = group["displayName"]
            if method == "DELETE":
                store.groups.pop(group_id)
                store.group_by_name.pop(name, None)
            elif method == "PUT":
                values = [member["value"] for member in body.get("members") or []]
                group["members"] = set(values)
                store.note_members(name, values)
            elif method == "PATCH":
                store.group_patches[name] += 1
                added: list[str] = []
                for operation in body.get("Operations", []):
                    op, path = operation.get("op", "").lower(), operation.get("path", "")
                    if op == "add" and path == "members":
                        added += [member["value"] for member in operation.get("value") or []]
                    elif op == "remove" and (match := _MEMBER_PATH.match(path)):
                        group["members"].discard(match.group(1))
                    elif op == "replace" and path == "displayName":
                        store.group_by_name.pop(name, None)
                        group["displayName"] = name = operation["value"]
                        store.group_by_name[name] = group_id
                group["members"].update(added)
                store.note_members(name, added)
        if method == "DELETE":
            self._send(204)
        else:
            self._send(200, {"id": group_id, "displayName": name})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def serve(port: int, token: str) -> None:
    handler = type("BoundHandler", (Handler,), {"store": Store(), "token": token})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__" and len(sys.argv) == 3:
    serve(int(sys.argv[1]), sys.argv[2])
