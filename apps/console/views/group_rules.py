"""A group's rule: the editor with a live preview (htmx) before saving, the exception lists, the
confirmation a mass removal needs, and making the group manual again."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods, require_POST

from apps.common.errors import ApplicationError
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms.group_rules import ConditionFormSet, RuleForm, condition_initial, identities
from apps.directory.models import Group, User
from apps.directory.roles import Capability
from apps.directory.rules.attributes import rule_attributes
from apps.directory.rules.conditions import parse_rule
from apps.directory.rules.selectors import group_rule, group_rule_preview
from apps.directory.rules.services import RemovalConfirmationRequired, group_rule_remove, group_rule_save


def _users_named(form: RuleForm, field: str) -> list[User]:
    """The users an exception list names (usernames or emails, any case); unknown ones are a form error."""
    wanted = identities(form.cleaned_data.get(field) or "")
    if not wanted:
        return []
    lowered = [item.lower() for item in wanted]
    found = list(
        User.objects.annotate(username_lower=Lower("username"), email_lower=Lower("email")).filter(
            Q(username_lower__in=lowered) | Q(email_lower__in=lowered)
        )
    )
    known = {user.username.lower() for user in found} | {user.email.lower() for user in found if user.email}
    missing = [item for item in wanted if item.lower() not in known]
    if missing:
        raise ValidationError({field: [f"No such user: {', '.join(missing[:10])}."]})
    return found


def _forms(request: HttpRequest, group: Group):
    """The bound (POST) or initial (the stored rule) rule form and condition rows."""
    choices = [(attribute.name, attribute.label) for attribute in rule_attributes().values()]
    if request.method == "POST":
        form = RuleForm(request.POST)
        conditions = ConditionFormSet(request.POST, prefix="c", form_kwargs={"attribute_choices": choices})
        return form, conditions
    stored = group_rule(group)
    initial = {"match": "all"}
    rows = condition_initial([])
    if stored is not None:
        initial = {
            "match": stored.match,
            "include": "\n".join(user.username for user in stored.include),
            "exclude": "\n".join(user.username for user in stored.exclude),
        }
        rows = condition_initial(stored.conditions)
    conditions = ConditionFormSet(initial=rows, prefix="c", form_kwargs={"attribute_choices": choices})
    return RuleForm(initial=initial), conditions


def _rule_input(form: RuleForm, conditions) -> dict:
    """What the services take, from valid forms; ValidationError for unknown users."""
    errors: dict = {}
    values: dict = {"match": form.cleaned_data["match"], "conditions": conditions.conditions()}
    try:  # checked here too, so that one save names bad conditions and unknown users together
        parse_rule(values["match"], values["conditions"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    for field in ("include", "exclude"):
        try:
            values[field] = _users_named(form, field)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return values


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, pk) -> HttpResponse:
    group = get_object_or_404(Group, pk=pk)
    form, conditions = _forms(request, group)
    confirmation = None
    if request.method == "POST" and form.is_valid() and conditions.is_valid():
        try:
            values = _rule_input(form, conditions)
            saved = group_rule_save(
                actor=request.user, group=group, confirm_removals=form.cleaned_data["confirm_removals"], **values
            )
        except RemovalConfirmationRequired as exc:
            confirmation = exc.extra
            form.add_error("confirm_removals", exc.message)
        except (ValidationError, ApplicationError) as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request,
                f"{group.name} is rule-based: {saved.added} member{'s' if saved.added != 1 else ''} added, "
                f"{saved.removed} removed.",
            )
            return redirect("console:group_detail", pk=group.pk)
    context = {
        "nav": "groups",
        "group": group,
        "form": form,
        "conditions": conditions,
        "confirmation": confirmation,
        "stored": group_rule(group),
    }
    return render(request, "console/groups/rule.html", context, status=400 if request.method == "POST" else 200)


@console_view(Capability.VIEW_DIRECTORY)
@require_POST
def rule_preview(request: HttpRequest, pk) -> HttpResponse:
    """The editor's live preview (an htmx partial): what saving the rule as it stands would do."""
    group = get_object_or_404(Group, pk=pk)
    form, conditions = _forms(request, group)
    context: dict = {"group": group, "preview": None, "errors": []}
    if form.is_valid() and conditions.is_valid():
        try:
            context["preview"] = group_rule_preview(group, **_rule_input(form, conditions))
        except ValidationError as exc:
            context["errors"] = exc.messages
    else:
        context["errors"] = ["Fill in the conditions to see who the rule matches."]
    return render(request, "console/groups/_rule_preview.html", context)


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def rule_delete(request: HttpRequest, pk) -> HttpResponse:
    group = get_object_or_404(Group, pk=pk)
    group_rule_remove(actor=request.user, group=group)
    messages.success(request, f"{group.name} is no longer rule-based: its members stay, and are edited one by one.")
    return redirect("console:group_detail", pk=group.pk)


urlpatterns = [
    path("<uuid:pk>/rule/", rule_edit, name="group_rule_edit"),
    path("<uuid:pk>/rule/preview/", rule_preview, name="group_rule_preview"),
    path("<uuid:pk>/rule/remove/", rule_delete, name="group_rule_delete"),
]
