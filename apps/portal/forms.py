from django import forms
from django.contrib.auth.forms import PasswordResetForm

from apps.directory.models import User, UserStatus


class SignInForm(forms.Form):
    """Django's field names (`username`, `password`), so password managers and axes know them."""

    username = forms.CharField(
        label="Username or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username", "autocapitalize": "none"}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Authentication code",
        max_length=32,
        widget=forms.TextInput(
            attrs={
                "autofocus": True,
                "autocomplete": "one-time-code",
                "inputmode": "text",
                "autocapitalize": "none",
                "spellcheck": "false",
            }
        ),
    )


class PortalPasswordResetForm(PasswordResetForm):
    """Django's form, for every active account with that email.

    The directory's `is_active` is a property of `status`, not a column. Accounts without a
    usable password are included on purpose: people created by provisioning (SCIM, the API)
    choose their first password this way.
    """

    def get_users(self, email: str):  # type: ignore[override]
        return User.objects.filter(email__iexact=email, status=UserStatus.ACTIVE).iterator()
