"""The connector pages' steps (the creation wizard) and tabs (afterwards), per kind of connector.

General info → SSO (SAML) or Sign-in (OIDC) → Identity Management → Attribute mapping →
Assignments → Activate; bookmarks and SCIM-only apps skip what does not apply.
"""

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from apps.connectors.models import Connector
from apps.directory.roles import Capability, has_capability


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    url_name: str


GENERAL = Step("general", "General info", "console:connector_general")
SSO = Step("sso", "SSO", "console:connector_sso")
OIDC = Step("oidc", "Sign-in (OIDC)", "console:connector_oidc")
IDENTITY = Step("identity", "Identity Management", "console:connector_identity")
MAPPINGS = Step("mappings", "Attribute mapping", "console:connector_mappings")
ASSIGNMENTS = Step("assignments", "Assignments", "console:connector_assignments")
ACTIVATE = Step("activate", "Activate", "console:connector_activate")


def steps_for(connector: Connector) -> list[Step]:
    """The wizard's steps for this kind: bookmarks and SCIM-only apps skip what does not apply."""
    steps = [GENERAL]
    if connector.has_sso:
        steps.append(SSO)
    if connector.has_oidc:
        steps.append(OIDC)
    if connector.has_provisioning:
        steps.append(IDENTITY)
    if connector.has_sso or connector.has_oidc or connector.has_provisioning:
        steps.append(MAPPINGS)
    return [*steps, ASSIGNMENTS, ACTIVATE]


def connector_tabs(connector: Connector) -> list[dict]:
    tabs = [{"key": "overview", "label": "Overview", "url": reverse("console:connector_detail", args=[connector.slug])}]
    for step in steps_for(connector):
        label = "Activation" if step is ACTIVATE else step.label
        tabs.append({"key": step.key, "label": label, "url": reverse(step.url_name, args=[connector.slug])})
    if connector.has_provisioning:
        url = reverse("console:connector_provisioning", args=[connector.slug])
        tabs.append({"key": "provisioning", "label": "Provisioning", "url": url})
    if connector.has_sso:
        url = reverse("console:connector_tracer", args=[connector.slug])
        tabs.append({"key": "tracer", "label": "SAML tracer", "url": url})
    if connector.has_oidc:
        url = reverse("console:connector_oidc_tracer", args=[connector.slug])
        tabs.append({"key": "oidc_tracer", "label": "OIDC tracer", "url": url})
    return tabs


def in_wizard(request: HttpRequest) -> bool:
    return request.GET.get("wizard") == "1"


def layout_context(request: HttpRequest, connector: Connector, tab: str) -> dict:
    """What the connector layout needs: the tabs, or in the wizard the steps with where we are."""
    context = {"nav": "connectors", "connector": connector, "tab": tab, "wizard": in_wizard(request)}
    context["can_manage"] = has_capability(request.user, Capability.MANAGE_CONNECTORS)
    if context["wizard"]:
        steps = steps_for(connector)
        keys = [step.key for step in steps]
        current = keys.index(tab) if tab in keys else 0
        context["steps"] = [
            {
                "label": step.label,
                "url": f"{reverse(step.url_name, args=[connector.slug])}?wizard=1",
                "state": "done" if position < current else ("current" if position == current else ""),
            }
            for position, step in enumerate(steps)
        ]
        if current + 1 < len(steps):
            following = steps[current + 1]
            context["next_step"] = {
                "label": following.label,
                "url": f"{reverse(following.url_name, args=[connector.slug])}?wizard=1",
            }
    else:
        context["tabs"] = connector_tabs(connector)
    return context


def after_save(request: HttpRequest, connector: Connector, step: Step) -> HttpResponse:
    """Back to the tab, or in the wizard on to the next step."""
    if in_wizard(request):
        steps = steps_for(connector)
        position = steps.index(step)
        if position + 1 < len(steps):
            return HttpResponseRedirect(f"{reverse(steps[position + 1].url_name, args=[connector.slug])}?wizard=1")
    return HttpResponseRedirect(reverse(step.url_name, args=[connector.slug]))
