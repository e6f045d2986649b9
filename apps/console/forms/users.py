from django import forms
from django.core.exceptions import ValidationError

from apps.directory.models import (
    DISPLAY_NAME_MAX_LENGTH,
    EMPLOYEE_ID_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PROFILE_TEXT_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    AdminRole,
    UserStatus,
)

STATUS_FILTER_CHOICES = [("", "Any status"), *UserStatus.choices]
SEARCH_MAX_LENGTH = 150


class UserFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=SEARCH_MAX_LENGTH,
        help_text="Username, email, name or employee ID.",
        widget=forms.TextInput(attrs={"type": "search"}),
    )
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=STATUS_FILTER_CHOICES,
        widget=forms.Select(attrs={"data-autosubmit": ""}),
    )
    group = forms.ChoiceField(label="Group", required=False, widget=forms.Select(attrs={"data-autosubmit": ""}))
    connector = forms.ChoiceField(label="Connector", required=False, widget=forms.Select(attrs={"data-autosubmit": ""}))
    department = forms.CharField(label="Department", required=False, max_length=PROFILE_TEXT_MAX_LENGTH)
    title = forms.CharField(label="Job title", required=False, max_length=PROFILE_TEXT_MAX_LENGTH)
    manager = forms.CharField(
        label="Manager", required=False, max_length=254, help_text="The manager's username or email."
    )
    attribute = forms.ChoiceField(label="Custom attribute", required=False)
    value = forms.CharField(label="Its value", required=False, max_length=1000)

    # The filters on the profile, as (form field, attribute key); `manager` and the custom attribute
    # are turned into keys by the view.
    PROFILE_FILTERS = (("department", "department"), ("title", "title"))

    def __init__(self, *args, groups=(), connectors=(), custom_attributes=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"].choices = [("", "Any group"), *((str(pk), name) for pk, name in groups)]
        self.fields["connector"].choices = [("", "Any connector"), *connectors]
        self.fields["attribute"].choices = [
            ("", "Any custom attribute"),
            *((f"custom.{item.name}", item.label or item.name) for item in custom_attributes),
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("attribute") and not cleaned.get("value"):
            self.add_error("value", "Enter the value to look for.")
        if cleaned.get("value") and not cleaned.get("attribute"):
            self.add_error("attribute", "Choose the custom attribute the value is of.")
        return cleaned


class UserForm(forms.Form):
    """The profile fields an admin edits; the names match `directory.services.user_update`."""

    username = forms.CharField(
        label="Username", max_length=USERNAME_MAX_LENGTH, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    email = forms.EmailField(label="Email", required=False, max_length=254)
    first_name = forms.CharField(label="First name", required=False, max_length=NAME_MAX_LENGTH)
    last_name = forms.CharField(label="Last name", required=False, max_length=NAME_MAX_LENGTH)
    display_name = forms.CharField(
        label="Display name",
        required=False,
        max_length=DISPLAY_NAME_MAX_LENGTH,
        help_text="Leave empty to use the first and last name.",
    )
    employee_id = forms.CharField(label="Employee ID", required=False, max_length=EMPLOYEE_ID_MAX_LENGTH)
    external_id = forms.CharField(
        label="External ID",
        required=False,
        max_length=255,
        help_text="The id an HR system or upstream directory knows this person by.",
    )


class UserCreateForm(UserForm):
    status = forms.ChoiceField(
        label="Status",
        choices=[(UserStatus.ACTIVE, "Active"), (UserStatus.STAGED, "Staged (may not sign in yet)")],
        initial=UserStatus.ACTIVE,
    )
    password = forms.CharField(
        label="Initial password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Optional; the password policy applies. Without one, the person chooses a password by email.",
    )
    password_temporary = forms.BooleanField(
        label="Ask for a new password at the first sign-in",
        required=False,
        initial=True,
        help_text="With an initial password: the person replaces it with their own before anything else.",
    )
    send_reset = forms.BooleanField(label="Email a link to choose a password", required=False, initial=True)


class TemporaryPasswordForm(forms.Form):
    password1 = forms.CharField(
        label="Temporary password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="The password policy applies. Tell the person over a channel you trust.",
    )
    password2 = forms.CharField(
        label="Temporary password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    temporary = forms.BooleanField(
        label="Ask for a new password at the next sign-in",
        required=False,
        initial=True,
        help_text="Untick only for an account whose password you manage yourself (a shared kiosk, a test account).",
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password2") and cleaned["password1"] != cleaned["password2"]:
            self.add_error("password2", ValidationError("The two passwords differ.", code="password_mismatch"))
        return cleaned


ROLE_CHOICES = [("", "No console access"), *reversed(AdminRole.choices)]


class RoleForm(forms.Form):
    role = forms.ChoiceField(
        label="Console role",
        choices=ROLE_CHOICES,
        required=False,
        widget=forms.RadioSelect,
        help_text="Read-only sees everything; help desk manages users and groups; admins manage connectors too; "
        "super-admins also manage settings and roles.",
    )
