"""Apps that take part in a portal sign-out without the portal knowing them.

The portal (an edge app) calls `sign_out_participants` when a person signs out; apps of the domain
layer (the OpenID Connect provider) register from their AppConfig.ready what a sign-out means to
them: end their own sign-ins of that session and name the front-channel logout URLs that the
person's browser should load. This module sits in the core so that both sides can import it.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class FrontChannelLogout:
    """A URL to load in a hidden frame of the signed-out page (or a form to post there)."""

    connector_name: str
    url: str
    binding: str = "front-channel"
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


Participant = Callable[..., list[FrontChannelLogout]]
_participants: list[Participant] = []


def register_sign_out_participant(participant: Participant) -> None:
    """`participant(user=, session_key=, since=, actor_label=)` ends what the app holds for that
    portal session (every session of the user when `session_key` is None) and returns the
    front-channel logouts for the person's browser."""
    if participant not in _participants:
        _participants.append(participant)


def sign_out_participants(
    *, user: Any, session_key: str | None, since: datetime.datetime | None, actor_label: str = ""
) -> list[FrontChannelLogout]:
    return [
        message
        for participant in _participants
        for message in participant(user=user, session_key=session_key, since=since, actor_label=actor_label)
    ]
