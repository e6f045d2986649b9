"""The advisory lock between a worker's user creates and another worker's count of the app's users.

PostgreSQL advisory locks (class, connector): each user create holds the shared lock from its POST
until its link is stored; counting the app's users against the links takes the exclusive lock, so
no create of another worker is half done (in the app, not yet linked) while it counts. Without
PostgreSQL (SQLite, one process) there is nothing to lock.
"""

import contextlib
import time
import zlib
from collections.abc import Iterator

from django.db import DatabaseError, OperationalError, connection, transaction

from apps.connectors.models import Connector

_CREATES_LOCK_CLASS = 7644
_COUNT_LOCK_WAIT_SECONDS = 2.0
CREATES_LOCK_SECONDS = 0.25


def _creates_lock_key(connector: Connector) -> int:
    return zlib.crc32(str(connector.pk).encode()) - 2**31


def _advisory_locks() -> bool:
    return connection.vendor == "postgresql"


class CreatesLock:
    """The shared lock a worker holds while its user creates are not linked yet.

    Taken before the first POST of a stretch of creates and released by `flush`, after the
    outcomes (with the new remote ids) are committed, at most CREATES_LOCK_SECONDS later: one lock
    round trip per stretch, not per user, and a count waits no longer than that.
    """

    def __init__(self, connector: Connector) -> None:
        self.key = _creates_lock_key(connector)
        self.held_since: float | None = None

    def hold(self) -> None:
        if self.held_since is None and _advisory_locks():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock_shared(%s, %s)", [_CREATES_LOCK_CLASS, self.key])
            self.held_since = time.monotonic()

    def held_for(self) -> float:
        return 0.0 if self.held_since is None else time.monotonic() - self.held_since

    def release(self) -> None:
        if self.held_since is not None:
            self.held_since = None
            # A connection lost meanwhile took the lock with it; the error that lost it is the one to raise.
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_shared(%s, %s)", [_CREATES_LOCK_CLASS, self.key])


@contextlib.contextmanager
def user_creates_paused(connector: Connector) -> Iterator[bool]:
    """Hold off other workers' user creates on this connector; yields False if that took too long."""
    if not _advisory_locks():
        yield True
        return
    key = _creates_lock_key(connector)
    try:
        # Waiting in PostgreSQL's lock queue (not polling) also keeps new creates from going first.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = %s", [f"{int(_COUNT_LOCK_WAIT_SECONDS * 1000)}ms"])
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_CREATES_LOCK_CLASS, key])
    except OperationalError:
        yield False
        return
    try:
        yield True
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_CREATES_LOCK_CLASS, key])
