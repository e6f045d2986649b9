"""When the portal session was signed in: ForceAuthn and the AuthnStatement need it."""

import time
from typing import Any

from django.http import HttpRequest

AUTH_TIME_KEY = "saml_idp_auth_time"


def record_auth_time(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """`user_logged_in` receiver: stamps the session with the moment of this sign-in."""
    if request is not None and hasattr(request, "session"):
        request.session[AUTH_TIME_KEY] = time.time()
