"""A replay cache that every web worker (and every host) shares: Redis when REDIS_URL is set,
otherwise the database.

In Redis a sighting is one `SET key 1 NX EX ttl`: atomic, expired by Redis itself, and no
PostgreSQL transaction (with its WAL flush) on every sign-in. Without Redis, or while Redis does
not answer, the database keeps the ids. An id first seen in Redis just before an outage is not in
the database, so during the outage it could be accepted once more; requests older than
SAML_IDP_REQUEST_MAX_AGE_SECONDS are refused anyway, which bounds that to a few minutes.
"""

import hashlib
import logging
import secrets
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from apps.common.redis import redis_client
from apps.saml_idp.models import SeenRequestId

logger = logging.getLogger(__name__)

_REDIS_PREFIX = "idp:saml:seen:"
# After Redis fails, the database answers alone for this long before Redis is tried again, so an
# outage costs one timeout now and then, not one per sign-in.
_REDIS_RETRY_SECONDS = 5.0

# Expired rows are harmless (they are reused in place); sweeping them now and then keeps the
# table at about one window's worth of ids without a periodic task.
_SWEEP_ONE_IN = 200

# One statement, one round trip, atomic on its own: insert the id, or take over its row if that
# sighting has expired; a row comes back only then. PostgreSQL and SQLite (3.35+) both speak it.
_UPSERT = (
    "INSERT INTO saml_idp_seenrequestid (key, expires) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires "
    "WHERE saml_idp_seenrequestid.expires <= %s RETURNING id"
)

_redis_down_until = 0.0


def _redis():
    if time.monotonic() < _redis_down_until:
        return None
    return redis_client(timeout=0.5)


def _remember_in_redis(key: str, ttl_seconds: int) -> bool | None:
    """True/False as `remember_once`; None when Redis is not there to ask."""
    global _redis_down_until
    client = _redis()
    if client is None:
        return None
    import redis

    try:
        return bool(client.set(_REDIS_PREFIX + key, b"1", nx=True, ex=ttl_seconds))
    except redis.RedisError:
        _redis_down_until = time.monotonic() + _REDIS_RETRY_SECONDS
        logger.warning("SAML replay cache: Redis unavailable, keeping request ids in the database for now")
        return None


def _remember_in_database(key: str, ttl_seconds: int) -> bool:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, [key, now + timedelta(seconds=ttl_seconds), now])
        accepted = cursor.fetchone() is not None
    if accepted and secrets.randbelow(_SWEEP_ONE_IN) == 0:
        SeenRequestId.objects.filter(expires__lte=now).delete()
    return accepted


def remember_once(*, purpose: str, scope: str, message_id: str, ttl_seconds: int) -> bool:
    """True the first time `message_id` is seen within `ttl_seconds`; False for a replay."""
    key = hashlib.sha256(f"{purpose}\0{scope}\0{message_id}".encode()).hexdigest()
    accepted = _remember_in_redis(key, ttl_seconds)
    if accepted is None:
        accepted = _remember_in_database(key, ttl_seconds)
    return accepted
