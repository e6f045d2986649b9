from django import forms

ISO_DATE = forms.DateInput(
    format="%Y-%m-%d",
    attrs={"placeholder": "YYYY-MM-DD", "inputmode": "numeric", "pattern": r"\d{4}-\d{2}-\d{2}", "size": "10"},
)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label="Actor", required=False, max_length=150, help_text="Part of a username.")
    action = forms.CharField(
        label="Action", required=False, max_length=64, help_text='An action ("user.update") or a prefix ("user").'
    )
    target = forms.CharField(label="Target", required=False, max_length=255, help_text="Part of its name.")
    # Plain ISO dates: the browser's own date picker shows its locale's order (a US admin's 12/07 is
    # another admin's 7 December), and the log speaks ISO 8601 everywhere else.
    since = forms.DateField(label="From", required=False, input_formats=["%Y-%m-%d"], widget=ISO_DATE)
    until = forms.DateField(label="To", required=False, input_formats=["%Y-%m-%d"], widget=ISO_DATE)

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        return cleaned
