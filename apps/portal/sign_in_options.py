"""Other ways to sign in than a password, which the sign-in pages offer as buttons.

Delegated login (apps.saml_sp) registers what it offers from its AppConfig.ready(), as Django's own
system checks are registered, so the portal lists upstream IdPs without importing the app that
knows them (which itself completes its sign-ins through the portal's services).
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SignInOption:
    """A button on the sign-in page; `enforced`: the only way in, so the page goes straight there."""

    name: str
    url: str
    enforced: bool = False


OptionsProvider = Callable[[str], list[SignInOption]]
_providers: list[OptionsProvider] = []


def register_sign_in_options(provider: OptionsProvider) -> None:
    """`provider(next_url)` gives the options that bring the person back to `next_url`."""
    if provider not in _providers:
        _providers.append(provider)


def sign_in_options(next_url: str) -> list[SignInOption]:
    return [option for provider in _providers for option in provider(next_url)]


def enforced_option(options: list[SignInOption]) -> SignInOption | None:
    return next((option for option in options if option.enforced), None)
