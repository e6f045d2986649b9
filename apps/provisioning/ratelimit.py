"""A per-connector request rate shared by all workers (Redis), or per process without Redis."""

import threading
import time

from apps.common.redis import redis_client

_local_windows: dict[str, tuple[int, int]] = {}
_local_lock = threading.Lock()


def _redis():
    return redis_client(timeout=2)


def _take_slot(key: str, per_second: int, second: int) -> bool:
    client = _redis()
    if client is not None:
        counter = f"idp:ratelimit:{key}:{second}"
        with client.pipeline() as pipe:
            pipe.incr(counter)
            pipe.expire(counter, 3)
            count, _ = pipe.execute()
        return int(count) <= per_second
    with _local_lock:
        window, count = _local_windows.get(key, (second, 0))
        if window != second:
            window, count = second, 0
        count += 1
        _local_windows[key] = (window, count)
        return count <= per_second


def wait_for_slot(key: str, per_second: int) -> float:
    """Block until a request may be sent under `per_second`; returns the seconds waited."""
    if per_second <= 0:
        return 0.0
    waited = 0.0
    while True:
        now = time.time()
        if _take_slot(key, per_second, int(now)):
            return waited
        pause = int(now) + 1 - now + 0.001
        time.sleep(pause)
        waited += pause
