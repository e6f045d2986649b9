"""Who is acting and from where, for the audit rows written while a request is handled."""

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None


_NO_REQUEST = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("audit_request_context", default=None)


def current_request_context() -> RequestContext:
    return _current.get() or _NO_REQUEST


@contextmanager
def request_context(*, request_id: str, ip: str | None) -> Iterator[RequestContext]:
    context = RequestContext(request_id=request_id, ip=ip)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
