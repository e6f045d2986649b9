"""A replay cache in the database, so that every web worker (and every host) sees the same ids."""

import hashlib
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.saml_idp.models import SeenRequestId

# Expired rows are harmless (they are reused in place); sweeping them now and then keeps the
# table at about one window's worth of ids without a periodic task.
_SWEEP_ONE_IN = 200


def remember_once(*, purpose: str, scope: str, message_id: str, ttl_seconds: int) -> bool:
    """True the first time `message_id` is seen within `ttl_seconds`; False for a replay."""
    key = hashlib.sha256(f"{purpose}\0{scope}\0{message_id}".encode()).hexdigest()
    now = timezone.now()
    expires = now + timedelta(seconds=ttl_seconds)
    try:
        with transaction.atomic():
            SeenRequestId.objects.create(key=key, expires=expires)
    except IntegrityError:
        # Seen before: a replay, unless that sighting has expired (then this one takes its place;
        # the conditional UPDATE lets only one of two concurrent requests win).
        return SeenRequestId.objects.filter(key=key, expires__lte=now).update(expires=expires) == 1
    if secrets.randbelow(_SWEEP_ONE_IN) == 0:
        SeenRequestId.objects.filter(expires__lte=now).delete()
    return True
