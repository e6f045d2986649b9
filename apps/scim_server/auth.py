"""SCIM authentication: `Authorization: Bearer <token>` only. A session cookie is never enough."""

from django.http import HttpRequest

from apps.audit.middleware import client_ip
from apps.scim_server.errors import ScimError
from apps.scim_server.models import ScimToken
from apps.scim_server.services import scim_token_authenticate

REALM = 'Bearer realm="scim"'


def unauthorized(detail: str, *, invalid_token: bool) -> ScimError:
    challenge = f'{REALM}, error="invalid_token"' if invalid_token else REALM
    return ScimError(401, detail, headers={"WWW-Authenticate": challenge})


def authenticate(request: HttpRequest) -> ScimToken:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        raise unauthorized("Authentication required: send Authorization: Bearer <SCIM token>.", invalid_token=False)
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or " " in secret or len(secret) > 200:
        raise unauthorized("Only bearer SCIM tokens are accepted.", invalid_token=True)
    token = scim_token_authenticate(secret=secret, ip=client_ip(request))
    if token is None:
        raise unauthorized("Invalid or revoked SCIM token.", invalid_token=True)
    return token
