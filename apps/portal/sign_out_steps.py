"""What else a sign-out does, contributed by other apps: where the browser goes last, once the
portal session has ended and the apps signed in during it were told.

Delegated login (apps.saml_sp) registers from its AppConfig.ready() the step that signs the person
out of the upstream IdP they signed in with, as it registers its sign-in buttons
(apps.portal.sign_in_options), so the portal never imports the app that knows upstreams.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest


@dataclass(frozen=True)
class SignOutStep:
    """A URL to load (`fields` empty) or a form to post there, top-level, after the sign-out.

    `session_data` is written into the signed-out session, so that whatever answers the step (a
    LogoutResponse) can be checked against it when the browser comes back.
    """

    name: str
    url: str
    fields: dict[str, str] = field(default_factory=dict)
    session_data: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


StepProvider = Callable[[HttpRequest], "SignOutStep | None"]
_providers: list[StepProvider] = []


def register_sign_out_step(provider: StepProvider) -> None:
    """`provider(request)`, called while the session is still signed in, gives its step or None."""
    if provider not in _providers:
        _providers.append(provider)


def sign_out_step(request: HttpRequest) -> SignOutStep | None:
    """The first step a provider gives for this session (a session signs in through one upstream)."""
    for provider in _providers:
        step = provider(request)
        if step is not None:
            return step
    return None
