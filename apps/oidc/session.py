"""What the portal session says about a sign-in, as OpenID Connect reports it: when (auth_time),
how (amr, acr) and which session (sid). Read from the session keys the portal exposes downward
(apps.common.sign_in_method, apps.saml_idp.session), never from the portal itself."""

import datetime
from dataclasses import dataclass, field

from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.common.sign_in_method import (
    SIGN_IN_METHOD_SESSION_KEY,
    authentication_method_references,
    has_second_factor,
)
from apps.saml_idp.session import AUTH_TIME_KEY

# The acr values this provider answers (acr_values_supported): any sign-in, or one that passed a
# second factor.
ACR_PASSWORD = "pwd"  # noqa: S105 - an acr value, not a password
ACR_MFA = "mfa"
ACR_VALUES = (ACR_PASSWORD, ACR_MFA)


def session_id(session_key: str) -> str:
    """The `sid` claim of every ID token issued in this portal session (OIDC Front-Channel Logout
    1.0). Derived from the session key, which changes at every sign-in, so nothing is stored."""
    return salted_hmac("oidc.sid", session_key or "").hexdigest()[:32]


@dataclass(frozen=True)
class SignIn:
    """The facts of the portal session behind an authorization request."""

    sid: str
    auth_time: datetime.datetime
    method: str
    amr: list[str] = field(default_factory=list)

    @property
    def has_mfa(self) -> bool:
        return has_second_factor(self.method)

    @property
    def acr(self) -> str:
        return ACR_MFA if self.has_mfa else ACR_PASSWORD

    def older_than(self, seconds: int, *, now: datetime.datetime | None = None) -> bool:
        return ((now or timezone.now()) - self.auth_time).total_seconds() > seconds


def sign_in_of(request: HttpRequest) -> SignIn:
    """The signed-in session's facts (the caller checked that someone is signed in)."""
    stamp = request.session.get(AUTH_TIME_KEY)
    auth_time = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC) if stamp else timezone.now()
    method = str(request.session.get(SIGN_IN_METHOD_SESSION_KEY, ""))
    return SignIn(
        sid=session_id(request.session.session_key or ""),
        auth_time=auth_time,
        method=method,
        amr=authentication_method_references(method),
    )
