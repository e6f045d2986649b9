"""Who hears of a change to the directory, inside the change's own transaction.

The directory's services announce each change here; the apps that act on changes (provisioning
records them for the connectors) register a listener from their AppConfig.ready(), so that the
directory, at the bottom of the layers, imports none of them. Not Django signals: the services call
these explicitly, in the transaction (and the batched round trip) of the change itself, so a change
and what it sets off commit together or not at all, and no bulk path skips them as it skips model
signals.
"""

from collections.abc import Collection, Iterable
from typing import Any, Protocol

from apps.directory.models import Group, User


class DirectoryListener(Protocol):
    def record_user_change(
        self, user_ids: Iterable[Any], reason: str, *, attributes: Collection[str] | None = None
    ) -> None: ...

    def record_user_deletion(self, user: User) -> None: ...

    def record_group_change(self, group: Group, reason: str, *, member_ids: Iterable[Any] = ()) -> None: ...

    def record_group_deletion(self, group: Group) -> None: ...


_listeners: list[DirectoryListener] = []


def listen(listener: DirectoryListener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def user_changed(user_ids: Iterable[Any], reason: str, *, attributes: Collection[str] | None = None) -> None:
    """`attributes`: the registry keys (apps.directory.attributes) that changed, e.g.
    {"title", "manager", "custom.cost_code"}; None when the change is not one of attributes
    (created, status, deleted), which every app that has the user must hear of."""
    ids = list(user_ids)
    keys = frozenset(attributes) if attributes is not None else None
    for listener in _listeners:
        listener.record_user_change(ids, reason, attributes=keys)


def user_deleted(user: User) -> None:
    for listener in _listeners:
        listener.record_user_deletion(user)


def group_changed(group: Group, reason: str, *, member_ids: Iterable[Any] = ()) -> None:
    members = list(member_ids)
    for listener in _listeners:
        listener.record_group_change(group, reason, member_ids=members)


def groups_changed(groups: list[Group], reason: str, *, member_ids: Iterable[Any] = ()) -> None:
    """Several groups changed for the same members at once (group rules moving one user in and out
    of several groups): a listener may record them together (`record_groups_change`), else each
    group is announced as by group_changed."""
    members = list(member_ids)
    for listener in _listeners:
        record_together = getattr(listener, "record_groups_change", None)
        if record_together is not None:
            record_together(groups, reason, member_ids=members)
            continue
        for group in groups:
            listener.record_group_change(group, reason, member_ids=members)


def group_deleted(group: Group) -> None:
    for listener in _listeners:
        listener.record_group_deletion(group)
