"""SCIM over HTTP to a connector's app: scim2-client on httpx2, status codes mapped to exceptions once.

One keep-alive client per connector per worker process (creating one costs about 50 ms).
"""

import email.utils
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx2
from scim2_client import SCIMClientException
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Group, ScimProvider, User

from apps.common.http import OutboundURLError, address_checking_transport, check_outbound_url

DEFAULT_TIMEOUT = httpx2.Timeout(15.0, connect=5.0)
MAX_RETRY_AFTER_SECONDS = 24 * 3600


class ScimError(Exception):
    """A SCIM request failed; `status` is the HTTP status (None for network failures)."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail


class TransientScimError(ScimError):
    """Network errors, timeouts and 5xx: worth retrying with backoff."""

    retryable = True


class RateLimitedError(TransientScimError):
    def __init__(self, message: str, *, retry_after: float | None, status: int = 429, detail: str = "") -> None:
        super().__init__(message, status=status, detail=detail)
        self.retry_after = retry_after


class ConflictError(ScimError):
    """409: the object exists already (the create probably succeeded before its answer was lost)."""


class RemoteNotFoundError(ScimError):
    """404: the app no longer has the object."""


class PermanentScimError(ScimError):
    """Any other 4xx: retrying the same request cannot help; an admin must look."""


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), MAX_RETRY_AFTER_SECONDS))


def error_for_status(status: int, payload: Any, headers: dict[str, str]) -> ScimError | None:
    """The exception class for a response status; None for success."""
    if 200 <= status < 300:
        return None
    detail = ""
    if isinstance(payload, dict):
        detail = str(payload.get("detail") or payload.get("scimType") or "")[:500]
    message = f"The app answered HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429:
        return RateLimitedError(message, retry_after=parse_retry_after(headers.get("retry-after")), detail=detail)
    # 501 Not Implemented will never succeed on retry: it is permanent, unlike the other 5xx.
    if status in (408, 425) or (status >= 500 and status != 501):
        error = TransientScimError(message, status=status, detail=detail)
        if status == 503 and headers.get("retry-after"):
            return RateLimitedError(message, retry_after=parse_retry_after(headers["retry-after"]), status=status)
        return error
    # RFC 7644 3.3 asks for 409 with scimType "uniqueness"; some apps send the scimType with a 400.
    if status == 409 or (status == 400 and isinstance(payload, dict) and payload.get("scimType") == "uniqueness"):
        return ConflictError(message, status=status, detail=detail)
    if status == 404:
        return RemoteNotFoundError(message, status=status, detail=detail)
    return PermanentScimError(message, status=status, detail=detail)


@dataclass
class ResponseRecord:
    method: str
    path: str
    body: Any
    status: int | None
    duration_ms: float
    error: str = ""


RequestObserver = Callable[[ResponseRecord], None]


class ScimClient:
    """The operations the provisioning engine needs, over one keep-alive connection pool."""

    def __init__(self, base_url: str, token: str, *, timeout: httpx2.Timeout = DEFAULT_TIMEOUT) -> None:
        check_outbound_url(base_url, resolve=False)
        self.base_url = base_url.rstrip("/") + "/"
        self._local = threading.local()
        self.http = httpx2.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/scim+json, application/json"},
            timeout=timeout,
            follow_redirects=False,
            event_hooks={"request": [self._pace], "response": [self._capture]},
            transport=address_checking_transport(),
        )
        self.scim = SyncSCIMClient(
            self.http,
            provider=ScimProvider(models=[User, Group]),
            check_request_payload=False,
            check_response_payload=False,
            check_response_status_codes=False,
            check_response_content_type=False,
            raise_scim_errors=False,
        )
        self.observer: RequestObserver | None = None
        self.before_request: Callable[[], None] | None = None

    def close(self) -> None:
        self.http.close()

    def _pace(self, request: httpx2.Request) -> None:
        # The rate limit's slot is taken here, as the request goes on the wire, not before the SCIM
        # client has built it: that work (slow on a first call) would make a request leave late and
        # land in the same one-second window as a later one.
        if self.before_request is not None:
            self.before_request()
        self._local.sent_at = time.perf_counter()

    def _capture(self, response: httpx2.Response) -> None:
        self._local.status = response.status_code
        self._local.headers = {key.lower(): value for key, value in response.headers.items()}

    def _call(self, method: str, path: str, body: Any, operation: Callable[[], Any]) -> Any:
        self._local.status, self._local.headers = None, {}
        started = self._local.sent_at = time.perf_counter()
        error: ScimError | None = None
        payload: Any = None
        try:
            payload = operation()
        except SCIMClientException as exc:
            if self._local.status is None:
                cause = exc.__cause__
                error = TransientScimError(f"Could not reach the app: {type(cause or exc).__name__}: {cause or exc}")
            else:
                error = PermanentScimError(f"The app's answer could not be read: {exc}", status=self._local.status)
        # From the moment the request left (after any wait for the rate limit).
        duration_ms = (time.perf_counter() - max(started, self._local.sent_at)) * 1000
        status = self._local.status
        if error is None and status is not None:
            error = error_for_status(status, payload, self._local.headers)
        if self.observer is not None:
            self.observer(ResponseRecord(method, path, body, status, duration_ms, error.message if error else ""))
        if error is not None:
            raise error
        return payload

    # --- operations ---

    def service_provider_config(self) -> dict:
        return self._call("GET", "/ServiceProviderConfig", None, lambda: self.scim.query(url="/ServiceProviderConfig"))

    def get(self, resource_type: str, remote_id: str) -> dict:
        path = f"/{resource_type}/{remote_id}"
        return self._call("GET", path, None, lambda: self.scim.query(resource_type[:-1], remote_id))

    def search(self, resource_type: str, scim_filter: str, *, count: int = 2, start_index: int = 1) -> list[dict]:
        params = {"filter": scim_filter, "count": count, "startIndex": start_index} if scim_filter else {
            "count": count, "startIndex": start_index,
        }  # fmt: skip
        result = self._call(
            "GET",
            f"/{resource_type}?filter={scim_filter}",
            None,
            lambda: self.scim.query(resource_type[:-1], query_parameters=params),
        )
        return list((result or {}).get("Resources") or [])

    def list_page(self, resource_type: str, *, start_index: int, count: int) -> dict:
        params = {"startIndex": start_index, "count": count}
        return (
            self._call(
                "GET",
                f"/{resource_type}?startIndex={start_index}&count={count}",
                None,
                lambda: self.scim.query(resource_type[:-1], query_parameters=params),
            )
            or {}
        )

    def create(self, resource_type: str, resource: dict) -> dict:
        return (
            self._call(
                "POST",
                f"/{resource_type}",
                resource,
                lambda: self.scim.create(resource=resource, url=f"/{resource_type}"),
            )
            or {}
        )

    def replace(self, resource_type: str, remote_id: str, resource: dict) -> dict:
        path = f"/{resource_type}/{remote_id}"
        body = {**resource, "id": remote_id}
        return self._call("PUT", path, body, lambda: self.scim.replace(resource=body, url=path)) or {}

    def patch(self, resource_type: str, remote_id: str, request: dict) -> dict | None:
        path = f"/{resource_type}/{remote_id}"
        return self._call(
            "PATCH", path, request, lambda: self.scim.modify(resource_type[:-1], remote_id, request, url=path)
        )

    def delete(self, resource_type: str, remote_id: str) -> None:
        path = f"/{resource_type}/{remote_id}"
        self._call("DELETE", path, None, lambda: self.scim.delete(resource_type[:-1], remote_id))


_clients: dict[tuple, ScimClient] = {}
_clients_lock = threading.Lock()


def client_for(connector_id: Any, base_url: str, token: str) -> ScimClient:
    """The worker's keep-alive client for this connector, rebuilt when its URL or token changes."""
    key = (str(connector_id), base_url, hash(token))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            for stale in [k for k in _clients if k[0] == str(connector_id)]:
                _clients.pop(stale).close()
            client = ScimClient(base_url, token)
            _clients[key] = client
        return client


def base_url_problem(base_url: str) -> str:
    """A plain-words reason the base URL may not be used, or ""."""
    try:
        check_outbound_url(base_url)
    except OutboundURLError as exc:
        return str(exc)
    if urlsplit(base_url).scheme not in {"http", "https"}:
        return "Only http and https URLs can be used."
    return ""
