"""Reads that only the console needs: the dashboard's summaries, each a fixed number of queries."""

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.urls import reverse

from apps.api.models import ApiToken
from apps.audit.models import AuditEvent
from apps.connectors.models import Connector
from apps.directory.models import CustomAttribute, Group, User, UserStatus
from apps.provisioning.selectors import ProvisioningState, provisioning_states
from apps.saml_sp.models import UpstreamIdentityProvider
from apps.scim_server.models import ScimToken

SIGN_IN_ACTIONS = ("portal.login.success", "portal.login.failure", "portal.lockout", "portal.mfa.failure")


def directory_counts() -> dict[str, int]:
    counts = User.objects.aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status=UserStatus.ACTIVE)),
        suspended=Count("id", filter=Q(status=UserStatus.SUSPENDED)),
        staged=Count("id", filter=Q(status=UserStatus.STAGED)),
    )
    counts["groups"] = Group.objects.count()
    counts.update(
        Connector.objects.aggregate(connectors=Count("id"), connectors_enabled=Count("id", filter=Q(enabled=True)))
    )
    return counts


def provisioning_health() -> list[tuple[Connector, ProvisioningState]]:
    """Every connector with Identity Management on, with its one provisioning state."""
    connectors = list(
        Connector.objects.filter(provisioning__enabled=True).select_related("provisioning").order_by("name")
    )
    states = provisioning_states(connectors)
    return [(connector, states[connector.pk]) for connector in connectors]


def recent_sign_ins(limit: int = 10) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(action__in=SIGN_IN_ACTIONS).order_by("-created", "-id")[:limit]


# End users' own doings: signing in to the portal and, through it, to apps.
_SIGN_IN_FAMILIES = ("portal.", "saml.sso.", "saml.slo")


def recent_admin_actions(limit: int = 10) -> QuerySet[AuditEvent]:
    """Changes made by staff (not sign-ins, not the system, not end users), newest first."""
    events = AuditEvent.objects.filter(Q(actor__is_staff=True) | Q(actor__is_superuser=True))
    for family in _SIGN_IN_FAMILIES:
        events = events.exclude(action__startswith=family)
    return events.order_by("-created", "-id")[:limit]


# Where the console shows each kind of audit target: (URL name, the model, its URL argument).
_TARGET_PAGES: dict[str, tuple[str, type, str]] = {
    "directory.user": ("console:user_detail", User, "pk"),
    "directory.group": ("console:group_detail", Group, "pk"),
    "connectors.connector": ("console:connector_detail", Connector, "slug"),
    "scim_server.scimtoken": ("console:scim_token_detail", ScimToken, "pk"),
    "api.apitoken": ("console:api_token_detail", ApiToken, "pk"),
    "saml_sp.upstreamidentityprovider": ("console:settings_upstream_edit", UpstreamIdentityProvider, "pk"),
}


def audit_target_urls(events: list[AuditEvent]) -> dict[int, str]:
    """Event id -> the console page of its target, for targets that still exist (one query per kind)."""
    wanted: dict[str, set[str]] = {}
    for event in events:
        if event.target_type in _TARGET_PAGES and event.target_id:
            wanted.setdefault(event.target_type, set()).add(event.target_id)
    found: dict[tuple[str, str], str] = {}
    for target_type, ids in wanted.items():
        url_name, model, argument = _TARGET_PAGES[target_type]
        try:
            rows = model.objects.filter(pk__in=ids).values_list("pk", argument)
            for pk, value in rows:
                found[(target_type, str(pk))] = reverse(url_name, args=[value])
        except (ValueError, ValidationError):  # an id of another shape (a hand-written row)
            continue
    return {event.pk: found[key] for event in events if (key := (event.target_type, event.target_id)) in found}


def custom_attributes_with_usage() -> list[tuple[CustomAttribute, int]]:
    """Every custom attribute definition, by name, with how many users hold a value of it."""
    definitions = list(CustomAttribute.objects.order_by("name"))
    if not definitions:
        return []
    # One pass over the users for every definition.
    counters = {f"n{n}": Count("id", filter=Q(custom_attributes__has_key=d.name)) for n, d in enumerate(definitions)}
    counts = User.objects.aggregate(**counters)
    return [(item, counts[f"n{n}"]) for n, item in enumerate(definitions)]


def custom_attribute_holder_count(definition: CustomAttribute) -> int:
    return User.objects.filter(custom_attributes__has_key=definition.name).count()


def user_by_username_or_email(text: str) -> User | None:
    text = text.strip()
    if not text:
        return None
    return User.objects.filter(Q(username__iexact=text) | Q(email__iexact=text)).order_by("username").first()
