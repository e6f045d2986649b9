"""Reads of the OpenID Connect provider."""

import uuid

from django.db.models import QuerySet
from oauth2_provider.models import get_application_model

from apps.connectors.models import Connector, ConnectorKind, MappingKind, OidcSettings
from apps.connectors.selectors import mapping_list, user_is_assigned
from apps.directory.models import User, UserStatus
from apps.oidc.claims import subject
from apps.oidc.models import OidcSession, OidcTraceRecord
from apps.saml_idp.attributes import user_properties
from apps.saml_idp.selectors import user_group_names

Application = get_application_model()
OIDC_KINDS = (ConnectorKind.OIDC, ConnectorKind.OIDC_SCIM)


def oidc_connector(slug: str) -> Connector | None:
    """The OIDC connector at `slug` with its settings, enabled or not."""
    return Connector.objects.select_related("oidc").filter(slug=slug, kind__in=OIDC_KINDS).first()


def oidc_settings_by_client_id(client_id: str) -> OidcSettings | None:
    if not client_id or len(client_id) > 64 or "\x00" in client_id:
        return None
    return OidcSettings.objects.select_related("connector").filter(client_id=client_id).first()


def application_by_client_id(client_id: str) -> object | None:
    return Application.objects.filter(client_id=client_id).first()


def claim_mappings(connector: Connector) -> list[tuple[str, str]]:
    """(source, claim) of the connector's claim mappings, in their order."""
    return [(row.source, row.target) for row in mapping_list(connector, MappingKind.OIDC)]


def claim_properties_of(user: User, mappings: list[tuple[str, str]]) -> dict:
    """The user's directory properties, with group names only when a mapping sends them."""
    wants_groups = any(source == "groups" for source, _ in mappings)
    groups = user_group_names(user.pk) if wants_groups else None
    return user_properties(user, groups, [source for source, _ in mappings])


def may_sign_in(connector: Connector, user: User) -> str:
    """Empty when `user` may sign in to `connector` now; else why not (`connector_disabled`,
    `user_suspended`, `not_assigned`). Assignments are the connectors app's rule."""
    if not connector.enabled:
        return "connector_disabled"
    if user.status != UserStatus.ACTIVE or not user.is_active:
        return "user_suspended"
    if not user_is_assigned(connector, user):
        return "not_assigned"
    return ""


def session_by_code(code_checksum: str) -> OidcSession | None:
    return OidcSession.objects.select_related("connector", "user").filter(code_checksum=code_checksum).first()


def session_by_family(token_family: uuid.UUID | None) -> OidcSession | None:
    if token_family is None:
        return None
    return OidcSession.objects.select_related("connector", "user").filter(token_family=token_family).first()


def live_sessions(user: User, *, sid: str | None = None) -> QuerySet[OidcSession]:
    sessions = OidcSession.objects.select_related("connector", "connector__oidc").filter(user=user, ended__isnull=True)
    return sessions if sid is None else sessions.filter(sid=sid)


def trace_records(connector: Connector, *, limit: int = 50) -> list[OidcTraceRecord]:
    return list(OidcTraceRecord.objects.filter(connector=connector).select_related("user")[:limit])


def subject_of(connector: Connector, user: User) -> str:
    """The `sub` this connector's tokens carry for `user`."""
    return subject(user_properties(user, None), connector.oidc.sub_source)


def sessions_with_sid(connector: Connector, sid: str) -> QuerySet[OidcSession]:
    return OidcSession.objects.select_related("user").filter(connector=connector, sid=sid, ended__isnull=True)
