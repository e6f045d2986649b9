"""Who hears of a change to the directory, inside the change's own transaction.

The directory's services announce each change here; the apps that act on changes (provisioning
records them for the connectors) register a listener from their AppConfig.ready(), so that the
directory, at the bottom of the layers, imports none of them. Not Django signals: the services call
these explicitly, in the transaction (and the batched round trip) of the change itself, so a change
and what it sets off commit together or not at all, and no bulk path skips them as it skips model
signals.
"""

from collections.abc import Iterable
from typing import Any, Protocol

from apps.directory.models import Group, User


class DirectoryListener(Protocol):
    def record_user_change(
        self, user_ids: Iterable[Any], reason: str, *, attributes: Iterable[str] | None = None
    ) -> None: ...

    def record_user_deletion(self, user: User) -> None: ...

    def record_group_change(self, group: Group, reason: str, *, member_ids: Iterable[Any] = ()) -> None: ...

    def record_group_deletion(self, group: Group) -> None: ...


_listeners: list[DirectoryListener] = []


def listen(listener: DirectoryListener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def user_changed(user_ids: Iterable[Any], reason: str, *, attributes: Iterable[str] | None = None) -> None:
    """`attributes`: the names of what changed (User fields such as `title` or `manager`, and
    `custom.<name>` for a custom attribute), so that only the apps that receive one of them are
    told; None when unknown or when everything may have (a create, a delete, a bulk path)."""
    ids = list(user_ids)
    changed = None if attributes is None else frozenset(attributes)
    for listener in _listeners:
        listener.record_user_change(ids, reason, attributes=changed)


def user_deleted(user: User) -> None:
    for listener in _listeners:
        listener.record_user_deletion(user)


def group_changed(group: Group, reason: str, *, member_ids: Iterable[Any] = ()) -> None:
    members = list(member_ids)
    for listener in _listeners:
        listener.record_group_change(group, reason, member_ids=members)


def group_deleted(group: Group) -> None:
    for listener in _listeners:
        listener.record_group_deletion(group)
