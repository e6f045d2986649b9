"""A SCIM-ish test downstream that allows N requests per second, for bench/provisioning.py.

It keeps users in memory, answers the requests the provisioning engine sends for users (a lookup by
`userName eq` or `externalId eq`, POST, PATCH, PUT, GET and DELETE by id) and answers 429 with
`Retry-After: 1` to any request beyond `per_second` in the current fixed one-second window of the
wall clock. Only accepted requests use up the window. It counts what it saw, so the benchmark can
report 429s, duplicate creates and users that never arrived.
"""

import json
import re
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_EQ_FILTER = re.compile(r'^\s*(userName|externalId)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)


class RateLimitedStore:
    """The downstream's users and its counters; every method holds the lock."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.lock = threading.Lock()
        self.users: dict[str, dict] = {}
        self.by_name: dict[str, str] = {}
        self.window = 0
        self.window_count = 0
        self.requests = 0
        self.accepted = 0
        self.rejected = 0  # answered 429
        self.max_in_window = 0
        self.by_method: Counter = Counter()
        self.create_attempts: Counter = Counter()  # userName (lowercased) -> POSTs that reached the app
        self.first_request_at: float | None = None
        self.last_request_at: float | None = None

    def admit(self, method: str) -> bool:
        now = time.time()
        with self.lock:
            self.requests += 1
            self.first_request_at = self.first_request_at or now
            self.last_request_at = now
            second = int(now)
            if second != self.window:
                self.window, self.window_count = second, 0
            if self.per_second and self.window_count >= self.per_second:
                self.rejected += 1
                return False
            self.window_count += 1
            self.max_in_window = max(self.max_in_window, self.window_count)
            self.accepted += 1
            self.by_method[method] += 1
            return True

    def duplicate_creates(self) -> int:
        with self.lock:
            return sum(count - 1 for count in self.create_attempts.values() if count > 1)

    def user_names(self) -> set[str]:
        with self.lock:
            return set(self.by_name)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, http.server answers keep-alive requests about 40 ms late (Nagle + delayed ACK).
    disable_nagle_algorithm = True
    store: RateLimitedStore
    token: str

    def log_message(self, format: str, *args: object) -> None:
        pass

    # --- plumbing ---

    def _send(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
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

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def _handle(self, method: str) -> None:
        body = self._body() if method in ("POST", "PUT", "PATCH") else None
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._error(401, "Bad token")
            return
        if not self.store.admit(method):
            self._send(
                429,
                {"schemas": [ERROR_SCHEMA], "status": "429", "detail": "Too many requests"},
                {"Retry-After": "1"},
            )
            return
        url = urlsplit(self.path)
        parts = [part for part in url.path.split("/") if part]
        if parts == ["ServiceProviderConfig"]:
            self._send(200, {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]})
        elif parts == ["Users"] and method == "GET":
            self._search(parse_qs(url.query))
        elif parts == ["Users"] and method == "POST":
            self._create(body or {})
        elif len(parts) == 2 and parts[0] == "Users":
            self._one(method, parts[1], body)
        else:
            self._error(404, "Not found")

    # --- resources ---

    def _search(self, query: dict) -> None:
        scim_filter = (query.get("filter") or [""])[0]
        store = self.store
        with store.lock:
            if scim_filter:
                match = _EQ_FILTER.match(scim_filter)
                if not match:
                    self._error(400, "Unsupported filter", "invalidFilter")
                    return
                attribute, value = match.group(1).lower(), match.group(2).replace('\\"', '"').replace("\\\\", "\\")
                if attribute == "username":
                    found_id = store.by_name.get(value.lower())
                    found = [store.users[found_id]] if found_id else []
                else:
                    found = [user for user in store.users.values() if user.get("externalId") == value]
            else:
                found = list(store.users.values())
        self._send(
            200,
            {"schemas": [LIST_SCHEMA], "totalResults": len(found), "startIndex": 1, "itemsPerPage": len(found),
             "Resources": found[:100]},
        )  # fmt: skip

    def _create(self, body: dict) -> None:
        name = str(body.get("userName") or "")
        if not name:
            self._error(400, "userName is required", "invalidValue")
            return
        store = self.store
        with store.lock:
            store.create_attempts[name.lower()] += 1
            if name.lower() in store.by_name:
                conflict = True
            else:
                conflict = False
                remote_id = uuid.uuid4().hex
                user = {**body, "id": remote_id, "meta": {"resourceType": "User", "location": f"/Users/{remote_id}"}}
                store.users[remote_id] = user
                store.by_name[name.lower()] = remote_id
        if conflict:
            self._error(409, f"userName {name} is taken", "uniqueness")
        else:
            self._send(201, user, {"Location": f"/Users/{remote_id}"})

    def _one(self, method: str, remote_id: str, body: dict | None) -> None:
        store = self.store
        with store.lock:
            user = store.users.get(remote_id)
            if user is None:
                missing = True
            else:
                missing = False
                if method == "PUT":
                    user = {**(body or {}), "id": remote_id, "meta": user.get("meta")}
                    store.users[remote_id] = user
                elif method == "PATCH":
                    for operation in (body or {}).get("Operations", []):
                        path, value = operation.get("path"), operation.get("value")
                        if operation.get("op", "").lower() == "replace" and path and "." not in path:
                            user[path] = value
                elif method == "DELETE":
                    store.users.pop(remote_id)
                    store.by_name.pop(str(user.get("userName", "")).lower(), None)
        if missing:
            self._error(404, "No such user")
        elif method == "DELETE":
            self._send(204)
        else:
            self._send(200, user)

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


class RateLimitedDownstream:
    """Serve a RateLimitedStore on a loopback port in a background thread."""

    def __init__(self, *, per_second: int, token: str) -> None:
        self.store = RateLimitedStore(per_second)
        handler = type("Handler", (_Handler,), {"store": self.store, "token": token})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="rate-limited-downstream", daemon=True)

    def start(self) -> "RateLimitedDownstream":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
