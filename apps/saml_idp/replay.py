"""A replay cache in the database, so that every web worker (and every host) sees the same ids."""

import hashlib
import secrets
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from apps.saml_idp.models import SeenRequestId

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


def remember_once(*, purpose: str, scope: str, message_id: str, ttl_seconds: int) -> bool:
    """True the first time `message_id` is seen within `ttl_seconds`; False for a replay."""
    key = hashlib.sha256(f"{purpose}\0{scope}\0{message_id}".encode()).hexdigest()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, [key, now + timedelta(seconds=ttl_seconds), now])
        accepted = cursor.fetchone() is not None
    if accepted and secrets.randbelow(_SWEEP_ONE_IN) == 0:
        SeenRequestId.objects.filter(expires__lte=now).delete()
    return accepted
