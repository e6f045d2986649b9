"""kombu's Redis transport, made to survive the loss of its broker while a task is running.

Celery's worker, on losing its broker connection, first calls `Connection.collect()`, which tries to
close the default channel and then drops the transport (`transport.client = None`), and then calls
`Connection.close()`, which closes that channel again. The first close fails on the dead socket
before the channel is marked closed; the second one restores the channel's unacknowledged
messages, which opens a new pool from `transport.client`: None by then. With a task running under
`acks_late` there is always such a message, so the worker died with
`Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")` (an idle
worker has nothing to restore and survived). Selected by CELERY_BROKER_TRANSPORT.

The channel below keeps the connection parameters it was opened with, so that late restore reaches
Redis if it is back (the message is delivered again; tasks are idempotent) or fails with the
connection error that Celery expects and ignores, and the worker reconnects.
"""

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._opened_with: dict[bool, dict[str, Any]] = {}
        super().__init__(*args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None:
            # A closed channel (beat's producer after the outage): a connection error, which makes
            # kombu open a new channel and publish again, instead of an AttributeError that loses the tick.
            raise kombu_redis.redis.exceptions.ConnectionError("the broker channel was closed")
        if self.connection.client is None:
            if asynchronous in self._opened_with:
                return dict(self._opened_with[asynchronous])
            raise kombu_redis.redis.exceptions.ConnectionError("the broker connection was closed")
        params = super()._connparams(asynchronous=asynchronous)
        self._opened_with[asynchronous] = dict(params)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
