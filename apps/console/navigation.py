"""The console's side navigation, filtered by what the signed-in admin's role may see."""

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse

from apps.directory.models import AdminRole
from apps.directory.roles import Capability, capabilities_of


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    capability: Capability
    section: str  # the `nav` a page sets to mark its item current


NAVIGATION = (
    NavItem("Dashboard", "console:dashboard", Capability.VIEW_DIRECTORY, "dashboard"),
    NavItem("Users", "console:user_list", Capability.VIEW_DIRECTORY, "users"),
    NavItem("Groups", "console:group_list", Capability.VIEW_DIRECTORY, "groups"),
    NavItem("Custom attributes", "console:custom_attribute_list", Capability.VIEW_DIRECTORY, "custom_attributes"),
    NavItem("Connectors", "console:connector_list", Capability.VIEW_CONNECTORS, "connectors"),
    NavItem("Signing keys", "console:key_list", Capability.VIEW_CONNECTORS, "keys"),
    NavItem("SCIM tokens", "console:scim_token_list", Capability.VIEW_CONNECTORS, "scim_tokens"),
    NavItem("API tokens", "console:api_token_list", Capability.VIEW_CONNECTORS, "api_tokens"),
    NavItem("Audit log", "console:audit_list", Capability.VIEW_AUDIT, "audit"),
    NavItem("Settings", "console:settings", Capability.MANAGE_SETTINGS, "settings"),
)


def console_navigation(request: HttpRequest) -> dict:
    """Context processor: `console_nav` (label, url, section) for the pages of the console."""
    if not request.path.startswith("/console/") or not getattr(request, "user", None):
        return {}
    allowed = capabilities_of(request.user)
    items = []
    for item in NAVIGATION:
        if item.capability not in allowed:
            continue
        items.append({"label": item.label, "url": reverse(item.url_name), "section": item.section})
    role = request.user.console_role if request.user.is_authenticated else ""
    return {
        "console_nav": items,
        "console_role_label": AdminRole(role).label if role else "",
    }
