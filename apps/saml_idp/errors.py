"""The one exception of the SAML IdP: why a message or a sign-in was refused."""

from apps.saml_idp.constants import STATUS_REQUESTER


class SamlRequestError(Exception):
    """A refusal. `reason` is a stable code for the audit trail; `message` is safe to show.

    `status`/`sub_status` are the SAML status codes used when the refusal can be answered to the
    SP (its request was parsed and its ACS URL verified); otherwise the user sees an error page
    with `http_status`.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: str = STATUS_REQUESTER,
        sub_status: str | None = None,
        http_status: int = 400,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.sub_status = sub_status
        self.http_status = http_status
