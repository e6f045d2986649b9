"""Users: search and filter the directory, change one person, and see why they can use which app."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.selectors import user_sign_in_events
from apps.common.errors import ApplicationError
from apps.connectors.selectors import (
    connector_choices,
    user_access_paths,
    users_filtered,
)
from apps.console import selectors as console_selectors
from apps.console.decorators import console_view
from apps.console.forms import add_service_errors
from apps.console.forms.profile import SECTIONS, ProfileEditor
from apps.console.forms.users import (
    RoleForm,
    TemporaryPasswordForm,
    UserCreateForm,
    UserFilterForm,
    UserForm,
)
from apps.console.views.user_profile import profile_sections
from apps.directory import selectors as directory_selectors
from apps.directory import services as directory
from apps.directory.attributes import custom_attribute_definitions
from apps.directory.models import User
from apps.directory.profile_selectors import UnknownFilter, profile_filter_q
from apps.directory.roles import Capability, can_manage_user
from apps.portal import lockout, passwords
from apps.portal import selectors as portal_selectors
from apps.portal import services as portal
from apps.provisioning.impacts import user_app_records, user_deprovision_plan

PROFILE_FIELDS = tuple(UserForm.base_fields)


def _managed_user(request: HttpRequest, pk) -> User:
    """The user `pk`, if the signed-in admin may change them (help desk may not change staff)."""
    account = get_object_or_404(User, pk=pk)
    if not can_manage_user(request.user, account):
        raise PermissionDenied("Your role may not change this account.")
    return account


def _detail(account: User) -> HttpResponse:
    return redirect("console:user_detail", pk=account.pk)


# The group filter lists this many groups by name (and the one chosen): ten thousand <option>s
# made the page 700 KB and a second to render (bench/scale_reads.py). A group's own page lists
# its members whatever its place in the alphabet.
GROUP_FILTER_CHOICES = 300

FILTER_FIELDS = ("q", "status", "group", "connector", "department", "title", "manager", "attribute")


def _profile_filters(form: UserFilterForm, data: dict) -> Q | None:
    """The list's profile filters as one condition; a filter that cannot be read becomes an error on
    its field (and the list shows nobody rather than everyone)."""
    conditions = []
    try:
        for field, key in form.PROFILE_FILTERS:
            if data.get(field):
                conditions.append(profile_filter_q(key, data[field]))
        if data.get("manager"):
            manager = console_selectors.user_by_username_or_email(data["manager"])
            if manager is None:
                form.add_error("manager", "No user has this username or email.")
                return Q(pk__in=[])
            conditions.append(profile_filter_q("manager", str(manager.pk)))
        if data.get("attribute"):
            conditions.append(profile_filter_q(data["attribute"], data["value"]))
    except UnknownFilter as error:
        form.add_error("value" if error.key.startswith("custom.") else None, str(error))
        return Q(pk__in=[])
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined &= condition
    return combined


def filtered_users(request: HttpRequest) -> tuple[UserFilterForm, QuerySet[User]]:
    """The users list's filter form and the users it selects (the list, and its CSV export)."""
    form = UserFilterForm(
        request.GET,
        groups=directory_selectors.group_choices(limit=GROUP_FILTER_CHOICES, include=request.GET.get("group")),
        connectors=connector_choices(),
        custom_attributes=custom_attribute_definitions(),
    )
    data = form.cleaned_data if form.is_valid() else {}
    users = users_filtered(
        search=data.get("q", ""),
        status=data.get("status", ""),
        group=data.get("group", ""),
        connector=data.get("connector", ""),
        where=_profile_filters(form, data),
    )
    return form, users


@console_view(Capability.VIEW_DIRECTORY)
@require_GET
def user_list(request: HttpRequest) -> HttpResponse:
    form, users = filtered_users(request)
    data = getattr(form, "cleaned_data", {})
    page, capped = directory_selectors.user_page(
        users, searching=bool(data.get("q")), number=request.GET.get("page"), size=settings.CONSOLE_PAGE_SIZE
    )
    context = {
        "nav": "users",
        "form": form,
        "page_obj": page,
        "users": page.object_list,
        "capped": capped,
        "cap": directory_selectors.SEARCH_RESULT_CAP,
        "filtered": any(data.get(name) for name in FILTER_FIELDS),
    }
    return render(request, "console/users/list.html", context, status=400 if form.errors else 200)


def _show_service_errors(form: UserForm, profile: ProfileEditor, error: Exception) -> None:
    """The directory's errors on the fields they name, in the identity form or the profile's sections."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        own = {name: texts for name, texts in error.message_dict.items() if name in form.fields}
        others = ValidationError({name: texts for name, texts in error.message_dict.items() if name not in own})
        if own:
            add_service_errors(form, ValidationError(own))
        for text in profile.add_service_errors(others) if others.error_dict else ():
            form.add_error(None, text)
    else:
        add_service_errors(form, error)


def _form_page(request: HttpRequest, form: UserForm, profile: ProfileEditor, account: User | None) -> HttpResponse:
    context = {
        "nav": "users",
        "form": form,
        "profile": profile,
        "manager": profile.manager_choice(),
        "account": account,
        "creating": account is None,
        "sections": [(title, [profile.form[name] for name in names]) for title, names in SECTIONS.items()],
    }
    invalid = form.errors or not profile_valid(profile)
    return render(request, "console/users/form.html", context, status=400 if invalid else 200)


def profile_valid(profile: ProfileEditor) -> bool:
    """No error shown on any profile section (after a POST has been checked)."""
    if profile.form.is_bound and profile.form.errors:
        return False
    return not any(formset.is_bound and (formset.total_error_count()) for formset in profile.formsets.values())


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    profile = ProfileEditor(request.POST or None, account=None, definitions=custom_attribute_definitions())
    if request.method == "POST" and all([form.is_valid(), profile.is_valid()]):
        data = form.cleaned_data
        try:
            account = directory.user_create(
                actor=request.user,
                **{name: data[name] for name in PROFILE_FIELDS},
                **profile.changes(),
                status=data["status"],
                password=data["password"] or None,
                password_temporary=data["password_temporary"],
            )
        except (ValidationError, ApplicationError) as error:
            _show_service_errors(form, profile, error)
        else:
            messages.success(request, f"{account.username} was created.")
            if data["send_reset"] and not data["password"]:
                _send_reset(request, account)
            return _detail(account)
    return _form_page(request, form, profile, None)


@console_view(Capability.VIEW_DIRECTORY)
@require_GET
def user_detail(request: HttpRequest, pk) -> HttpResponse:
    account = get_object_or_404(User.objects.select_related("manager"), pk=pk)
    context = {
        "nav": "users",
        "account": account,
        "profile_sections": profile_sections(account, custom_attribute_definitions()),
        "groups": list(account.groups.order_by("name")),
        "access_paths": user_access_paths(account),
        "app_records": user_app_records(account),
        "sign_ins": list(user_sign_in_events(account)),
        "mfa": portal_selectors.mfa_summary(account),
        "can_manage": can_manage_user(request.user, account),
    }
    return render(request, "console/users/detail.html", context)


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def user_edit(request: HttpRequest, pk) -> HttpResponse:
    account = _managed_user(request, pk)
    initial = {name: getattr(account, name) for name in PROFILE_FIELDS}
    form = UserForm(request.POST or None, initial=initial)
    profile = ProfileEditor(request.POST or None, account=account, definitions=custom_attribute_definitions())
    if request.method == "POST" and all([form.is_valid(), profile.is_valid()]):
        changes = {name: value for name, value in form.cleaned_data.items() if value != initial[name]}
        changes.update(profile.changes())
        try:
            if changes:
                directory.user_update(actor=request.user, user=account, **changes)
        except (ValidationError, ApplicationError) as error:
            _show_service_errors(form, profile, error)
        else:
            messages.success(request, f"{account.username} was saved." if changes else "Nothing changed.")
            return _detail(account)
    return _form_page(request, form, profile, account)


def _set_status(request: HttpRequest, pk, service, done: str) -> HttpResponse:
    account = _managed_user(request, pk)
    try:
        service(actor=request.user, user=account)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{account.username} {done}.")
    return _detail(account)


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def user_suspend(request: HttpRequest, pk) -> HttpResponse:
    if str(pk) == str(request.user.pk):
        messages.error(request, "You cannot suspend your own account.")
        return redirect("console:user_detail", pk=pk)
    return _set_status(request, pk, directory.user_suspend, "is suspended and can no longer sign in")


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def user_reactivate(request: HttpRequest, pk) -> HttpResponse:
    return _set_status(request, pk, directory.user_reactivate, "is active again")


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def user_delete(request: HttpRequest, pk) -> HttpResponse:
    """GET names what will be deprovisioned where; POST deletes."""
    account = _managed_user(request, pk)
    if account.pk == request.user.pk:
        messages.error(request, "You cannot delete your own account.")
        return _detail(account)
    if request.method == "POST":
        try:
            directory.user_delete(actor=request.user, user=account)
        except ApplicationError as error:
            messages.error(request, error.message)
            return _detail(account)
        messages.success(request, f"{account.username} was deleted.")
        return redirect("console:user_list")
    context = {
        "nav": "users",
        "account": account,
        "plan": user_deprovision_plan(account),
        "access_paths": user_access_paths(account),
        "group_count": account.memberships.count(),
    }
    return render(request, "console/users/delete.html", context)


def _send_reset(request: HttpRequest, account: User) -> bool:
    try:
        passwords.password_reset_send(actor=request.user, user=account)
    except ApplicationError as error:
        messages.error(request, error.message)
        return False
    messages.success(request, f"A password reset link was emailed to {account.email}.")
    return True


@console_view(Capability.MANAGE_DIRECTORY)
@require_http_methods(["GET", "POST"])
def user_password(request: HttpRequest, pk) -> HttpResponse:
    """Email the portal's reset link, or set a temporary password (the policy applies)."""
    account = _managed_user(request, pk)
    action = request.POST.get("action")
    form = TemporaryPasswordForm(request.POST if action == "set" else None)
    if action == "email":
        _send_reset(request, account)
        return _detail(account)
    if action == "set" and form.is_valid():
        try:
            directory.user_set_password(
                actor=request.user,
                user=account,
                password=form.cleaned_data["password1"],
                temporary=form.cleaned_data["temporary"],
            )
        except ValidationError as error:
            for message in error.message_dict.get("password", error.messages):
                form.add_error("password1", message)
        else:
            # Whoever knew the old password (or holds a session opened with it) is out now.
            ended = portal.sign_out_everywhere(actor=request.user, user=account)
            messages.success(
                request,
                f"{account.username} has "
                + ("a temporary password now, to replace at the next sign-in" if account.must_change_password
                   else "a new password now")
                + (f"; {ended} open session{'s' if ended != 1 else ''} ended." if ended else "."),
            )  # fmt: skip
            return _detail(account)
    context = {"nav": "users", "account": account, "form": form}
    return render(request, "console/users/password.html", context, status=400 if form.errors else 200)


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def user_mfa_reset(request: HttpRequest, pk) -> HttpResponse:
    account = _managed_user(request, pk)
    removed = portal.mfa_reset(actor=request.user, user=account)
    if any(removed.values()):
        messages.success(
            request,
            f"Second factors of {account.username} removed: {removed['totp']} authenticator app(s), "
            f"{removed['recovery_codes']} recovery code(s), {removed['passkeys']} passkey(s). "
            "They set up a new one at their next sign-in.",
        )
    else:
        messages.info(request, f"{account.username} had no second factor to remove.")
    return _detail(account)


@console_view(Capability.MANAGE_DIRECTORY)
@require_POST
def user_unlock(request: HttpRequest, pk) -> HttpResponse:
    account = _managed_user(request, pk)
    removed = lockout.portal_unlock(actor=request.user, user=account)
    if removed:
        messages.success(request, f"{account.username} may sign in again ({removed} failed attempt(s) cleared).")
    else:
        messages.info(request, f"{account.username} was not locked out.")
    return _detail(account)


@console_view(Capability.MANAGE_ROLES, sensitive=True)
@require_http_methods(["GET", "POST"])
def user_role(request: HttpRequest, pk) -> HttpResponse:
    account = _managed_user(request, pk)
    form = RoleForm(request.POST or None, initial={"role": account.console_role})
    if request.method == "POST" and form.is_valid():
        try:
            directory.user_set_admin_role(actor=request.user, user=account, role=form.cleaned_data["role"])
        except (ValidationError, ApplicationError) as error:
            if isinstance(error, ApplicationError):
                form.add_error("role", error.message)
            else:
                add_service_errors(form, error)
        else:
            role = account.console_role
            label = dict(RoleForm.base_fields["role"].choices).get(role, "")
            messages.success(request, f"{account.username} is now: {label or 'no console access'}.")
            return _detail(account)
    context = {"nav": "users", "account": account, "form": form}
    return render(request, "console/users/role.html", context, status=400 if form.errors else 200)


urlpatterns = [
    path("", user_list, name="user_list"),
    path("new/", user_create, name="user_create"),
    path("<uuid:pk>/", user_detail, name="user_detail"),
    path("<uuid:pk>/edit/", user_edit, name="user_edit"),
    path("<uuid:pk>/delete/", user_delete, name="user_delete"),
    path("<uuid:pk>/suspend/", user_suspend, name="user_suspend"),
    path("<uuid:pk>/reactivate/", user_reactivate, name="user_reactivate"),
    path("<uuid:pk>/password/", user_password, name="user_password"),
    path("<uuid:pk>/mfa/reset/", user_mfa_reset, name="user_mfa_reset"),
    path("<uuid:pk>/unlock/", user_unlock, name="user_unlock"),
    path("<uuid:pk>/role/", user_role, name="user_role"),
]
