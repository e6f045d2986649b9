"""The process's Redis clients, for the REDIS_URL of the moment (None without one)."""

import threading
from typing import Any

from django.conf import settings

_clients: dict[tuple[str, float], Any] = {}
_lock = threading.Lock()


def redis_client(*, timeout: float) -> Any | None:
    """One client (with its own connection pool) per URL and timeout, made at first use.

    Request paths (the SAML replay cache, the SCIM rate limit) want a short `timeout`, so that a
    Redis outage costs them half a second before they fall back; the provisioning worker waits longer.
    """
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    key = (url, timeout)
    with _lock:
        client = _clients.get(key)
        if client is None:
            import redis

            client = _clients[key] = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return client
