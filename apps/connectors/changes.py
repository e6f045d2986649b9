"""Who hears of a change to a connector's scope or settings, inside the change's own transaction.

Provisioning registers its outbox from its AppConfig.ready() (as with apps.directory.changes), so
that this app, below provisioning in the layers, never imports it."""

from typing import Protocol

from apps.connectors.models import Assignment, Connector


class ConnectorListener(Protocol):
    def record_assignment_change(self, assignment: Assignment, reason: str) -> None: ...

    def record_full_sync(self, connector: Connector, reason: str = "sync") -> int: ...


_listeners: list[ConnectorListener] = []


def listen(listener: ConnectorListener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def assignment_changed(assignment: Assignment, reason: str) -> None:
    for listener in _listeners:
        listener.record_assignment_change(assignment, reason)


def settings_changed(connector: Connector, reason: str) -> None:
    """Everything the connector reaches may now be sent differently: a full sync is recorded."""
    for listener in _listeners:
        listener.record_full_sync(connector, reason)
