"""Forms of the SAML tracer page."""

from django import forms
from django.conf import settings

_DURATIONS = (5, 15, 30, 60)


class TraceStartForm(forms.Form):
    minutes = forms.TypedChoiceField(
        label="Capture for",
        coerce=int,
        help_text="Capture stops by itself after this time.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        limit = settings.SAML_IDP_TRACE_MAX_MINUTES
        durations = sorted({minutes for minutes in _DURATIONS if minutes <= limit} | {limit})
        self.fields["minutes"].choices = [(minutes, f"{minutes} minutes") for minutes in durations]
        self.fields["minutes"].initial = min(15, limit)


class AssertionPreviewForm(forms.Form):
    q = forms.CharField(
        label="User",
        max_length=200,
        help_text="A username, an email address or part of a name.",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )
    user = forms.UUIDField(required=False, widget=forms.HiddenInput)


class SpReportForm(forms.Form):
    report = forms.CharField(
        label="What the app said",
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Paste the app's error message or log line, e.g. “Lasso error: [-427] When looking for an "
        "assertion we did not found it”.",
    )
