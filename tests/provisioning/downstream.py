"""A strict SCIM 2.0 downstream app for provisioning tests, with programmable faults.

A threaded `http.server` that keeps users and groups in memory and answers like a careful app
would: bearer token required, userName and displayName unique (case-insensitively), read-only
attributes refused in PATCH, group members that match no user refused, deleted users removed from
their groups. Faults are queued and consumed by the requests they match: the next N answers 500,
429 with Retry-After, a delay, a dropped connection, a response lost after the change was made,
a stale search index; plus a requests-per-second limiter that answers 429 beyond it.

It is an independent implementation of the protocol, not a mock of the portal's client: tests
read its state (`users`, `groups`) and its request log (`requests`, `count`).
"""

import contextlib
import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
READ_ONLY = {"id", "meta", "groups"}
PREFIX = "/scim/v2"

_FILTER = re.compile(r'^\s*([A-Za-z][\w.:]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_PATH = re.compile(r"^(?P<attr>[A-Za-z][\w$-]*)(?:\[(?P<filter>[^\]]+)\])?(?:\.(?P<sub>[A-Za-z][\w$-]*))?$")


@dataclass
class Request:
    """One request as the app saw it."""

    method: str
    path: str  # without the /scim/v2 prefix and without the query
    query: dict[str, str]
    body: Any
    authorization: str
    client: tuple[str, int]
    received: float
    status: int | None = None
    fault: str = ""

    @property
    def template(self) -> str:
        """The path with resource ids replaced by {id}: /Users/{id}."""
        parts = self.path.strip("/").split("/")
        if len(parts) >= 2:
            parts[1] = "{id}"
        return "/" + "/".join(parts)


@dataclass
class Fault:
    kind: str  # status | delay | lose_response | drop | stale_search
    times: int
    method: str | None = None
    path: str | None = None  # a template (/Users, /Users/{id}) or an exact path
    match: Callable[[Request], bool] | None = None
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    detail: str = ""

    def matches(self, request: Request) -> bool:
        if self.method and request.method != self.method:
            return False
        if self.path and self.path not in (request.path, request.template):
            return False
        return not (self.match and not self.match(request))


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def body(self) -> dict:
        body = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


class ScimApp:
    """The app's data and rules, apart from HTTP."""

    def __init__(self, base_url_getter: Callable[[], str]) -> None:
        self.users: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.lock = threading.RLock()
        self._base_url = base_url_getter
        self._version = 0
        # Off: the app accepts a second user with a userName it has (no 409), as some apps do.
        self.unique_user_names = True

    # --- helpers ---

    def _meta(self, resource_type: str, resource_id: str, created: str | None = None) -> dict:
        self._version += 1
        now = _now()
        return {
            "resourceType": resource_type,
            "created": created or now,
            "lastModified": now,
            "location": f"{self._base_url()}/{resource_type}s/{resource_id}",
            "version": f'W/"{self._version}"',
        }

    def _store(self, resource_type: str) -> dict[str, dict]:
        return self.users if resource_type == "User" else self.groups

    def get(self, resource_type: str, resource_id: str) -> dict:
        resource = self._store(resource_type).get(resource_id)
        if resource is None:
            raise ScimError(404, f"{resource_type} {resource_id} not found")
        return resource

    def user_by_name(self, user_name: str) -> dict | None:
        return next((u for u in self.users.values() if u.get("userName", "").lower() == user_name.lower()), None)

    def group_by_name(self, name: str) -> dict | None:
        return next((g for g in self.groups.values() if g.get("displayName", "").lower() == name.lower()), None)

    # --- validation ---

    def _check_user(self, body: Any, resource_id: str | None = None) -> dict:
        if not isinstance(body, dict):
            raise ScimError(400, "The body must be a JSON object", "invalidSyntax")
        if USER_SCHEMA not in (body.get("schemas") or []):
            raise ScimError(400, "schemas must include the core User schema", "invalidSyntax")
        user_name = body.get("userName")
        if not isinstance(user_name, str) or not user_name.strip():
            raise ScimError(400, "userName is required", "invalidValue")
        if "active" in body and not isinstance(body["active"], bool):
            raise ScimError(400, "active must be a boolean", "invalidValue")
        for email in body.get("emails") or []:
            if not isinstance(email, dict) or not isinstance(email.get("value"), str) or "@" not in email["value"]:
                raise ScimError(400, f"Invalid email entry {email!r}", "invalidValue")
        existing = self.user_by_name(user_name)
        if existing is not None and existing["id"] != resource_id and self.unique_user_names:
            raise ScimError(409, f"userName {user_name} is already taken", "uniqueness")
        return {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY}

    def _check_members(self, members: Any) -> list[dict]:
        if not isinstance(members, list):
            raise ScimError(400, "members must be a list", "invalidValue")
        checked = []
        for member in members:
            value = member.get("value") if isinstance(member, dict) else None
            if not isinstance(value, str) or (value not in self.users and value not in self.groups):
                raise ScimError(400, f"Group member {value!r} matches no user or group", "invalidValue")
            entry = {"value": value}
            if value in self.users:
                entry["type"] = "User"
                entry["display"] = self.users[value].get("userName", "")
            checked.append(entry)
        return checked

    def _check_group(self, body: Any, resource_id: str | None = None) -> dict:
        if not isinstance(body, dict):
            raise ScimError(400, "The body must be a JSON object", "invalidSyntax")
        if GROUP_SCHEMA not in (body.get("schemas") or []):
            raise ScimError(400, "schemas must include the core Group schema", "invalidSyntax")
        name = body.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise ScimError(400, "displayName is required", "invalidValue")
        existing = self.group_by_name(name)
        if existing is not None and existing["id"] != resource_id:
            raise ScimError(409, f"A group named {name} exists already", "uniqueness")
        checked = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY}
        checked["members"] = self._dedupe(self._check_members(body.get("members") or []))
        return checked

    @staticmethod
    def _dedupe(members: list[dict]) -> list[dict]:
        seen, result = set(), []
        for member in members:
            if member["value"] not in seen:
                seen.add(member["value"])
                result.append(member)
        return result

    # --- operations ---

    def create(self, resource_type: str, body: Any) -> dict:
        checked = self._check_user(body) if resource_type == "User" else self._check_group(body)
        resource_id = uuid.uuid4().hex
        resource = {"id": resource_id, **checked, "meta": self._meta(resource_type, resource_id)}
        if resource_type == "User":
            resource.setdefault("active", True)
        self._store(resource_type)[resource_id] = resource
        return resource

    def replace(self, resource_type: str, resource_id: str, body: Any) -> dict:
        current = self.get(resource_type, resource_id)
        if isinstance(body, dict) and body.get("id") not in (None, resource_id):
            raise ScimError(400, "id does not match the URL", "mutability")
        checked = (
            self._check_user(body, resource_id) if resource_type == "User" else self._check_group(body, resource_id)
        )
        resource = {"id": resource_id, **checked}
        resource["meta"] = self._meta(resource_type, resource_id, current["meta"]["created"])
        self._store(resource_type)[resource_id] = resource
        return resource

    def delete(self, resource_type: str, resource_id: str) -> None:
        self.get(resource_type, resource_id)
        del self._store(resource_type)[resource_id]
        if resource_type == "User":
            for group in self.groups.values():
                group["members"] = [m for m in group.get("members", []) if m["value"] != resource_id]

    def search(self, resource_type: str, scim_filter: str | None) -> list[dict]:
        resources = list(self._store(resource_type).values())
        if not scim_filter:
            return resources
        match = _FILTER.match(scim_filter)
        if not match:
            raise ScimError(400, f"Unsupported filter {scim_filter!r}", "invalidFilter")
        attribute, value = match.group(1), _unescape(match.group(2))
        case_insensitive = attribute.lower() in {"username", "displayname"}

        def lookup(resource: dict) -> Any:
            node: Any = resource
            for part in attribute.split("."):
                key = next((k for k in node if k.lower() == part.lower()), None) if isinstance(node, dict) else None
                if key is None:
                    return None
                node = node[key]
            return node

        def equal(found: Any) -> bool:
            if isinstance(found, list):
                return any(equal(item.get("value") if isinstance(item, dict) else item) for item in found)
            if not isinstance(found, str):
                return False
            return found.lower() == value.lower() if case_insensitive else found == value

        return [resource for resource in resources if equal(lookup(resource))]

    def patch(self, resource_type: str, resource_id: str, body: Any) -> dict:
        current = self.get(resource_type, resource_id)
        if not isinstance(body, dict) or PATCH_SCHEMA not in (body.get("schemas") or []):
            raise ScimError(400, "A PATCH body needs the PatchOp schema", "invalidSyntax")
        operations = body.get("Operations")
        if not isinstance(operations, list) or not operations:
            raise ScimError(400, "Operations must be a non-empty list", "invalidSyntax")
        working = copy.deepcopy(current)
        for operation in operations:
            self._apply(resource_type, working, operation)
        if resource_type == "User":
            checked = self._check_user({**working, "schemas": working.get("schemas") or [USER_SCHEMA]}, resource_id)
        else:
            checked = self._check_group(working, resource_id)
        resource = {"id": resource_id, **checked}
        resource["meta"] = self._meta(resource_type, resource_id, current["meta"]["created"])
        self._store(resource_type)[resource_id] = resource
        return resource

    def _apply(self, resource_type: str, working: dict, operation: Any) -> None:
        if not isinstance(operation, dict):
            raise ScimError(400, "Each operation must be an object", "invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in {"add", "replace", "remove"}:
            raise ScimError(400, f"Unknown op {operation.get('op')!r}", "invalidSyntax")
        path = operation.get("path")
        value = operation.get("value")
        if not path:
            if op == "remove" or not isinstance(value, dict):
                raise ScimError(400, "An operation without a path needs an object value", "noTarget")
            for key, item in value.items():
                self._apply(resource_type, working, {"op": op, "path": key, "value": item})
            return
        container = working
        if path.startswith("urn:"):
            urn, _, path = path.rpartition(":")
            if urn == USER_SCHEMA:
                container = working
            else:
                container = working.setdefault(urn, {})
                if urn not in working.setdefault("schemas", []):
                    working["schemas"].append(urn)
        parsed = _PATH.match(path)
        if not parsed:
            raise ScimError(400, f"Invalid path {path!r}", "invalidPath")
        attr, value_filter, sub = parsed.group("attr"), parsed.group("filter"), parsed.group("sub")
        key = next((k for k in container if k.lower() == attr.lower()), attr)
        if key.lower() in READ_ONLY:
            raise ScimError(400, f"{key} is read-only", "mutability")
        if resource_type == "Group" and key == "members":
            self._patch_members(working, op, value_filter, value)
            return
        if value_filter:
            match = _FILTER.match(value_filter)
            if not match:
                raise ScimError(400, f"Invalid filter {value_filter!r}", "invalidFilter")
            field_name, wanted = match.group(1), _unescape(match.group(2))
            entries = container.setdefault(key, [])
            selected = [e for e in entries if isinstance(e, dict) and str(e.get(field_name)) == wanted]
            if op == "remove":
                if sub:
                    for entry in selected:
                        entry.pop(sub, None)
                else:
                    container[key] = [e for e in entries if e not in selected]
                return
            if not selected:
                if op == "replace" and not sub:
                    raise ScimError(400, f"No value matches {path!r}", "noTarget")
                entry = {field_name: wanted}
                entries.append(entry)
                selected = [entry]
            for entry in selected:
                if sub:
                    entry[sub] = value
                else:
                    entry.clear()
                    entry.update(value)
            return
        if op == "remove":
            if sub:
                if isinstance(container.get(key), dict):
                    container[key].pop(sub, None)
            else:
                container.pop(key, None)
            return
        if sub:
            target = container.setdefault(key, {})
            if not isinstance(target, dict):
                raise ScimError(400, f"{key} is not complex", "invalidPath")
            target[sub] = value
        elif op == "add" and isinstance(container.get(key), list) and isinstance(value, list):
            container[key] = container[key] + value
        else:
            container[key] = value

    def _patch_members(self, working: dict, op: str, value_filter: str | None, value: Any) -> None:
        members = working.setdefault("members", [])
        if op == "remove":
            if not value_filter:
                working["members"] = []
                return
            match = _FILTER.match(value_filter)
            if not match or match.group(1).lower() != "value":
                raise ScimError(400, f"Invalid members filter {value_filter!r}", "invalidFilter")
            wanted = _unescape(match.group(2))
            working["members"] = [m for m in members if m["value"] != wanted]
            return
        if value_filter:
            raise ScimError(400, "add/replace of members takes no filter", "invalidPath")
        new = self._check_members(value if isinstance(value, list) else [value])
        working["members"] = self._dedupe((members if op == "add" else []) + new)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address) -> None:
        """Connections cut by stop() or by a killed client are part of the tests, not errors."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # otherwise keep-alive answers come 40 ms late
    downstream: "FaultyScimServer"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.downstream._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.downstream._track(self.connection, add=False)

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

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = unquote(parts.path)
        request = Request(
            method=method,
            path=path[len(PREFIX) :] if path.startswith(PREFIX) else path,
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            body=body,
            authorization=self.headers.get("Authorization", ""),
            client=self.client_address,
            received=time.time(),
        )
        self.downstream._record(request)
        outcome = self.downstream._respond(request, path.startswith(PREFIX))
        if outcome is None:  # the connection is dropped without an answer
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, payload, headers = outcome
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            self.wfile.write(data)


class FaultyScimServer:
    """The downstream app: start(), base_url, token, faults, state and the request log."""

    def __init__(self, token: str = "", *, supports_patch: bool = True) -> None:
        self.token = token or f"downstream-token-{uuid.uuid4().hex}"
        self.supports_patch = supports_patch
        self.port = 0
        self.app = ScimApp(lambda: self.base_url)
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.rate_limit_per_second = 0
        self._rate_windows: dict[int, int] = {}
        self.rate_limit_sliding = False
        self._accepted_times: list[float] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._placeholder: socket.socket | None = None

    # --- life cycle ---

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def start(self) -> "FaultyScimServer":
        if self._placeholder is None:
            # Keeps the port ours while the app is down (a bound socket that does not listen: connections
            # are refused), so that no other test's server can take it between stop() and start().
            self._placeholder = socket.socket()
            self._placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._placeholder.bind(("127.0.0.1", 0))
            self.port = self._placeholder.getsockname()[1]
        handler = type("Handler", (_Handler,), {"downstream": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: stop listening and cut every open connection (the next connect is refused)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server = None

    def close(self) -> None:
        """Stop for good and give the port back."""
        self.stop()
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    # --- faults ---

    def fail(
        self,
        status: int = 500,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        match: Callable[[Request], bool] | None = None,
        retry_after: str | int | None = None,
        detail: str = "",
    ) -> None:
        """The next `times` matching requests are answered `status` and change nothing."""
        retry = None if retry_after is None else str(retry_after)
        self.faults.append(Fault("status", times, method, path, match, status, retry, 0.0, detail))

    def delay(
        self,
        seconds: float,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        match: Callable[[Request], bool] | None = None,
    ) -> None:
        """The next `times` matching requests wait `seconds` before they are handled."""
        self.faults.append(Fault("delay", times, method, path, match, seconds=seconds))

    def lose_response(self, *, times: int = 1, method: str | None = None, path: str | None = None, match=None) -> None:
        """The change is made, then the connection is closed without an answer."""
        self.faults.append(Fault("lose_response", times, method, path, match))

    def drop(self, *, times: int = 1, method: str | None = None, path: str | None = None, match=None) -> None:
        """The connection is closed without an answer and nothing is changed."""
        self.faults.append(Fault("drop", times, method, path, match))

    def stale_search(self, *, times: int = 1, path: str = "/Users") -> None:
        """Filtered searches find nothing (a search index that lags behind writes)."""
        self.faults.append(
            Fault("stale_search", times, "GET", path, match=lambda request: bool(request.query.get("filter")))
        )

    def limit_rate(self, per_second: int, *, sliding: bool = False) -> None:
        """More than `per_second` requests in one clock second are answered 429, Retry-After: 1; with
        `sliding`, more than `per_second` accepted in the second before each request (as many apps count)."""
        self.rate_limit_per_second = per_second
        self.rate_limit_sliding = sliding

    def clear_faults(self) -> None:
        self.faults.clear()
        self.rate_limit_per_second = 0

    # --- handling ---

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_fault(self, request: Request, *, delays: bool) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.kind == "delay") == delays and fault.matches(request):
                    fault.times -= 1
                    return fault
        return None

    def _rate_limited(self, request: Request) -> bool:
        if not self.rate_limit_per_second:
            return False
        with self._lock:
            if self.rate_limit_sliding:
                recent = [t for t in self._accepted_times if t > request.received - 1.0]
                if len(recent) >= self.rate_limit_per_second:
                    self._accepted_times = recent
                    return True
                self._accepted_times = [*recent, request.received]
                return False
            second = int(request.received)
            self._rate_windows[second] = self._rate_windows.get(second, 0) + 1
            return self._rate_windows[second] > self.rate_limit_per_second

    def _respond(self, request: Request, prefixed: bool) -> tuple[int, Any, dict] | None:
        delay = self._take_fault(request, delays=True)
        if delay is not None:
            request.fault = "delay"
            time.sleep(delay.seconds)
        fault = self._take_fault(request, delays=False)
        stale = False
        if fault is not None and fault.kind == "drop":
            request.fault = "drop"
            return None
        if fault is not None and fault.kind == "status":
            request.fault, request.status = f"status {fault.status}", fault.status
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            body = ScimError(fault.status, fault.detail or f"Injected HTTP {fault.status}").body()
            return fault.status, body, headers
        if fault is not None and fault.kind == "stale_search":
            request.fault, stale = "stale_search", True
        if self._rate_limited(request):
            request.fault, request.status = "rate_limit", 429
            return 429, ScimError(429, "Too many requests").body(), {"Retry-After": "1"}
        if request.authorization != f"Bearer {self.token}":
            request.status = 401
            return 401, ScimError(401, "Authentication failed").body(), {"WWW-Authenticate": 'Bearer realm="scim"'}
        if not prefixed:
            request.status = 404
            return 404, ScimError(404, f"No SCIM endpoint at {request.path}").body(), {}
        try:
            with self.app.lock:
                status, payload = self._route(request, stale)
        except ScimError as exc:
            status, payload = exc.status, exc.body()
        request.status = status
        if fault is not None and fault.kind == "lose_response":
            request.fault = "lose_response"
            return None
        return status, payload, {}

    def _route(self, request: Request, stale: bool) -> tuple[int, Any]:
        parts = request.path.strip("/").split("/")
        collection = parts[0]
        if collection == "ServiceProviderConfig" and request.method == "GET":
            return 200, self.service_provider_config()
        resource_type = {"Users": "User", "Groups": "Group"}.get(collection)
        if resource_type is None or len(parts) > 2:
            raise ScimError(404, f"Unknown endpoint {request.path}")
        app = self.app
        if len(parts) == 1:
            if request.method == "GET":
                found = [] if stale else app.search(resource_type, request.query.get("filter"))
                start = max(int(request.query.get("startIndex") or 1), 1)
                count = int(request.query.get("count") or 100)
                page = found[start - 1 : start - 1 + max(count, 0)]
                return 200, {
                    "schemas": [LIST_SCHEMA],
                    "totalResults": len(found),
                    "startIndex": start,
                    "itemsPerPage": len(page),
                    "Resources": copy.deepcopy(page),
                }
            if request.method == "POST":
                return 201, copy.deepcopy(app.create(resource_type, request.body))
            raise ScimError(405, f"{request.method} is not allowed on {request.path}")
        resource_id = parts[1]
        if request.method == "GET":
            return 200, copy.deepcopy(app.get(resource_type, resource_id))
        if request.method == "PUT":
            return 200, copy.deepcopy(app.replace(resource_type, resource_id, request.body))
        if request.method == "PATCH":
            if not self.supports_patch:
                raise ScimError(501, "PATCH is not supported")
            return 200, copy.deepcopy(app.patch(resource_type, resource_id, request.body))
        if request.method == "DELETE":
            app.delete(resource_type, resource_id)
            return 204, None
        raise ScimError(405, f"{request.method} is not allowed on {request.path}")

    def service_provider_config(self) -> dict:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": self.supports_patch},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": 200},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": [
                {"type": "oauthbearertoken", "name": "OAuth Bearer Token", "description": "Bearer token"}
            ],
        }

    # --- reading the state back ---

    @property
    def users(self) -> list[dict]:
        with self.app.lock:
            return copy.deepcopy(list(self.app.users.values()))

    @property
    def groups(self) -> list[dict]:
        with self.app.lock:
            return copy.deepcopy(list(self.app.groups.values()))

    def user(self, user_name: str) -> dict | None:
        with self.app.lock:
            return copy.deepcopy(self.app.user_by_name(user_name))

    def group(self, display_name: str) -> dict | None:
        with self.app.lock:
            return copy.deepcopy(self.app.group_by_name(display_name))

    def member_names(self, display_name: str) -> set[str]:
        group = self.group(display_name)
        if group is None:
            return set()
        with self.app.lock:
            users = self.app.users
            return {users[m["value"]]["userName"] for m in group.get("members", []) if m["value"] in users}

    def seed_user(self, user_name: str, **attributes: Any) -> dict:
        with self.app.lock:
            return copy.deepcopy(
                self.app.create("User", {"schemas": [USER_SCHEMA], "userName": user_name, **attributes})
            )

    def seed_group(self, display_name: str, member_ids: list[str] = ()) -> dict:
        with self.app.lock:
            members = [{"value": member_id} for member_id in member_ids]
            body = {"schemas": [GROUP_SCHEMA], "displayName": display_name, "members": members}
            return copy.deepcopy(self.app.create("Group", body))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self._lock:
            return [
                request
                for request in self.requests
                if (method is None or request.method == method)
                and (path is None or path in (request.path, request.template))
            ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.calls(method, path))

    def writes(self) -> list[Request]:
        """Requests that change something (not GET), in the order they arrived."""
        return [request for request in self.calls() if request.method != "GET"]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
