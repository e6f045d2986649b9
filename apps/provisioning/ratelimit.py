"""A connector's outbound request rate, shared by every worker process: GCRA in Redis.

The generic cell rate algorithm keeps one number per connector, the theoretical arrival time (TAT)
of its next request. A caller reserves the slot at max(TAT, now) and moves TAT on by one emission
interval, atomically (one Lua script, Redis's own clock), then sleeps until its slot. Requests of
all workers together are therefore spaced by at least the interval, with no burst: an app that
limits by a sliding one-second window sees at most `per_second` requests in any second. The counter
per clock second it replaces let a window that straddles two seconds see twice the limit, which
such an app answered with 429s (about one request in five at 5/s).

The interval is stretched so that `per_second` requests span one second plus
PROVISIONING_RATE_WINDOW_MARGIN_MS: a request that leaves a little late (scheduling, network)
must not land in the same window as the one `per_second` slots after it.

A slot says when a request may leave, not when it does: a process descheduled past its slot sends
late, and the request `per_second` slots later, on time, then shares a window with it. So each
request is also admitted by a log of the times requests really left (a sorted set per connector):
it waits while `per_second` requests left within the last window. That log, not the slots, is what
guarantees an app never sees more than `per_second` in any second; the slots keep the requests apart.

Without Redis (or while it is unreachable) each process keeps the same schedule for itself.
"""

import logging
import threading
import time

from django.conf import settings

from apps.common.redis import redis_client

logger = logging.getLogger(__name__)

# KEYS[1]: the connector's TAT (microseconds, Redis clock). ARGV[1]: the interval in microseconds.
# Returns how many microseconds the caller waits before its request.
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.floor((next_tat - now) / 1000) + 1000)
return tat - now
"""

# KEYS[1]: the connector's log of send times (microseconds, Redis clock). ARGV[1]: the window in
# microseconds, ARGV[2]: requests allowed in it, ARGV[3]: a unique member. Returns 0 when the request
# is admitted (and logged), else the microseconds until the oldest logged request leaves the window.
_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. now)
  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + window - now, 1)
"""

_local_tats: dict[str, float] = {}
_local_lock = threading.Lock()
_scripts: dict[tuple[int, str], object] = {}


def _redis():
    return redis_client(timeout=2)


def emission_interval(per_second: int) -> float:
    """Seconds between two requests of one connector, margin included."""
    margin = settings.PROVISIONING_RATE_WINDOW_MARGIN_MS / 1000
    return (1.0 + margin) / per_second


def _script(client, source: str):
    script = _scripts.get((id(client), source))
    if script is None:
        script = _scripts[(id(client), source)] = client.register_script(source)
    return script


def _reserve_shared(client, key: str, interval: float) -> float:
    script = _script(client, _RESERVE)
    waited_us = script(keys=[f"idp:ratelimit:gcra:{key}"], args=[int(interval * 1_000_000)])
    return int(waited_us) / 1_000_000


def _reserve_local(key: str, interval: float) -> float:
    with _local_lock:
        now = time.monotonic()
        tat = max(_local_tats.get(key, now), now)
        _local_tats[key] = tat + interval
        return tat - now


def reserve_slot(key: str, per_second: int) -> float:
    """Reserve the next request slot of `key` under `per_second`; returns the seconds until it."""
    interval = emission_interval(per_second)
    client = _redis()
    if client is not None:
        try:
            return _reserve_shared(client, key, interval)
        except Exception as exc:  # noqa: BLE001 - Redis away: pace this process alone meanwhile
            logger.warning("rate limit of %s kept per process while Redis is unreachable (%s)", key, exc)
    return _reserve_local(key, interval)


def _admit_shared(client, key: str, per_second: int) -> float:
    """Wait until the log of send times admits one more request, and log it; the seconds waited."""
    window_us = int((1.0 + settings.PROVISIONING_RATE_WINDOW_MARGIN_MS / 1000) * 1_000_000)
    member = f"{threading.get_ident()}:{time.monotonic_ns()}"
    script = _script(client, _ADMIT)
    waited = 0.0
    while True:
        wait = int(script(keys=[f"idp:ratelimit:log:{key}"], args=[window_us, per_second, member])) / 1_000_000
        if wait <= 0:
            return waited
        time.sleep(wait)
        waited += wait


def wait_for_slot(key: str, per_second: int) -> float:
    """Block until a request may be sent under `per_second`; returns the seconds waited."""
    if per_second <= 0:
        return 0.0
    wait = max(reserve_slot(key, per_second), 0.0)
    if wait > 0:
        time.sleep(wait)
    client = _redis()
    if client is not None:
        try:
            wait += _admit_shared(client, key, per_second)
        except Exception as exc:  # noqa: BLE001 - Redis away: the slots alone pace this process
            logger.warning("send-time log of %s skipped while Redis is unreachable (%s)", key, exc)
    return wait
