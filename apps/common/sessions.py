"""Django's database sessions (SESSION_ENGINE), with the per-request read as one plain statement.

Every request with a session cookie loads the session. Django's store does it with an ORM query
whose compilation costs about 0.2 ms of CPU here, several times the query itself; this store runs
the same SELECT written out (a prepared statement on PostgreSQL). On PostgreSQL the same statement
also reads the request's cache generation tokens (apps.common.generations), which the request
would otherwise read in a round trip of its own as soon as it needs a cached setting. Everything else (writes, key
rotation, deletion, expiry, `clearsessions`) is Django's own, and the database stays the only
place a session lives, so ending a session (sign-out, "sign out everywhere") takes effect at once
in every worker.
"""

from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connections, router
from django.utils import timezone

from apps.common import generations
from apps.common.db import hot_path_cursor


class SessionStore(DatabaseSessionStore):
    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        using = router.db_for_read(self.model)
        connection = connections[using]
        # The table name comes from the model (quoted); the key and the time are bound.
        select = (
            f"SELECT session_data FROM {connection.ops.quote_name(self.model._meta.db_table)} "  # noqa: S608
            "WHERE session_key = %s AND expire_date > %s"
        )
        params = [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())]
        with hot_path_cursor(using) as cursor:
            if connection.vendor == "postgresql" and generations.wants_tokens():
                cursor.execute(f"SELECT ({select}), {generations.TOKENS_SUBQUERY}", params)
                session_data, tokens = cursor.fetchone()
                generations.take_tokens(tokens)
                row = (session_data,) if session_data is not None else None
            else:
                cursor.execute(select, params)
                row = cursor.fetchone()
        if row is None:
            # As Django's store: an unknown or expired key is dropped, so a new one is issued.
            self._session_key = None
            return {}
        return self.decode(row[0])
