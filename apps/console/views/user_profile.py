"""The user page's profile: its sections as facts, and the manager picker (htmx partials)."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from apps.console.decorators import console_view
from apps.console.forms.profile import ENTRY_LISTS, SECTIONS, ProfileForm
from apps.directory import selectors as directory_selectors
from apps.directory.models import CustomAttribute, User
from apps.directory.roles import Capability

MANAGER_SEARCH_MIN_LENGTH = 2
MANAGER_SEARCH_LIMIT = 10


def _entry_text(field: str, item: dict) -> str:
    if field == "addresses":
        parts = [item.get("street_address"), item.get("postal_code"), item.get("locality"), item.get("region"),
                 item.get("country")]  # fmt: skip
        return item.get("formatted") or ", ".join(str(part) for part in parts if part)
    return str(item.get("value", ""))


def _custom_text(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(_custom_text(item) for item in value)
    return "" if value is None else str(value)


def profile_sections(account: User, definitions: list[CustomAttribute]) -> list[dict]:
    """The user page's profile, grouped: [{"title", "facts": [(label, text)], "lists": [...]}]."""
    labels = {name: field.label for name, field in ProfileForm.base_fields.items()}
    sections = []
    for title, names in SECTIONS.items():
        facts = [(labels[name], getattr(account, name)) for name in names if name != "manager"]
        if "manager" in names:
            manager = account.manager
            facts.append(("Manager", manager))
        lists = []
        if title == "Contact":
            for field, (_, list_title) in ENTRY_LISTS.items():
                items = [
                    {"text": _entry_text(field, item), "type": item.get("type", ""), "primary": item.get("primary")}
                    for item in getattr(account, field) or []
                ]
                lists.append({"title": list_title, "items": items})
        sections.append({"title": title, "facts": facts, "lists": lists})
    stored = account.custom_attributes or {}
    custom = [(item.label or item.name, _custom_text(stored.get(item.name))) for item in definitions]
    if custom:
        sections.append({"title": "Custom attributes", "facts": custom, "lists": []})
    return sections


@console_view(Capability.MANAGE_DIRECTORY)
@require_GET
def manager_search(request: HttpRequest) -> HttpResponse:
    """The manager picker's matches (an htmx partial): anyone but the person being edited."""
    query = request.GET.get("q", "").strip()[:150]
    matches: list[User] = []
    if len(query) >= MANAGER_SEARCH_MIN_LENGTH:
        users = directory_selectors.user_list(search=query).prefetch_related(None).select_related(None)
        if excluded := directory_selectors.user_get_or_none(request.GET.get("exclude")):
            users = users.exclude(pk=excluded.pk)
        matches = list(users.only("id", "username", "first_name", "last_name", "display_name", "email")[
            :MANAGER_SEARCH_LIMIT
        ])  # fmt: skip
    context = {"query": query, "matches": matches, "min_length": MANAGER_SEARCH_MIN_LENGTH}
    return render(request, "console/users/_manager_matches.html", context)


@console_view(Capability.MANAGE_DIRECTORY)
@require_GET
def manager_choice(request: HttpRequest) -> HttpResponse:
    """The chosen manager (an htmx partial that replaces the picker's choice): a hidden input with
    their id and their name; no id (or an unknown one) clears the choice."""
    manager = directory_selectors.user_get_or_none(request.GET.get("id")) if request.GET.get("id") else None
    return render(request, "console/users/_manager_choice.html", {"manager": manager})


urlpatterns = [
    path("manager/search/", manager_search, name="user_manager_search"),
    path("manager/choice/", manager_choice, name="user_manager_choice"),
]
