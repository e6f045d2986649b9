"""The console's home: the state of the directory, provisioning and sign-ins at a glance."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from apps.console import selectors
from apps.console.decorators import console_view
from apps.directory.roles import Capability, has_capability


@console_view(Capability.VIEW_DIRECTORY)
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        "nav": "dashboard",
        "counts": selectors.directory_counts(),
        "show_connectors": has_capability(request.user, Capability.VIEW_CONNECTORS),
        "recent_sign_ins": selectors.recent_sign_ins(),
    }
    if context["show_connectors"]:
        context["health"] = selectors.provisioning_health()
    if has_capability(request.user, Capability.VIEW_AUDIT):
        context["recent_actions"] = selectors.recent_admin_actions()
    return render(request, "console/dashboard.html", context)


urlpatterns = [path("", dashboard, name="dashboard")]
