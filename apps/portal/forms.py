from django import forms
from django.contrib.auth.forms import AuthenticationForm


class PortalAuthenticationForm(AuthenticationForm):
    """Django's form, with one message for every failure so that it never tells whether a username exists."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password do not match an active account.",
        "inactive": "That username and password do not match an active account.",
    }
    username = forms.CharField(
        label="Username or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
