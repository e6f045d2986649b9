"""Per-token request budget: a fixed one-minute window, shared through Redis when there is one."""

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from apps.common.redis import redis_client

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int = 0


class _LocalCounter:
    """For a single-process deployment without Redis (development, the embedded setup)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def incr(self, key: str, amount: int = 1) -> int:
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts.clear()
            self._counts[key] = self._counts.get(key, 0) + amount
            return self._counts[key]


_local = _LocalCounter()


def rate_limit_hit(
    token_key: str, *, cost: int = 1, limit: int | None = None, now: float | None = None
) -> RateDecision:
    """Count `cost` requests of a token (`token_key` names it uniquely); refuse when the window's budget
    is spent. A Bulk request costs one per operation: 1,000 writes are not one request."""
    limit = settings.SCIM_RATE_LIMIT_PER_MINUTE if limit is None else limit
    if limit <= 0:
        return RateDecision(True)
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    key = f"idp:scim:rate:{token_key}:{window}"
    count = None
    client = redis_client(timeout=0.5)
    if client is not None:
        try:
            with client.pipeline() as pipe:
                pipe.incrby(key, cost)
                pipe.expire(key, WINDOW_SECONDS * 2)
                count = pipe.execute()[0]
        except Exception:  # noqa: BLE001 - a Redis outage must not take SCIM down; count locally
            logger.warning("SCIM rate limit: Redis unavailable, counting in this process")
    if count is None:
        count = _local.incr(key, cost)
    if count <= limit:
        return RateDecision(True)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
    return RateDecision(False, retry_after)
