from django import forms


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label="Actor", required=False, max_length=150, help_text="Part of a username.")
    action = forms.CharField(
        label="Action", required=False, max_length=64, help_text='An action ("user.update") or a prefix ("user").'
    )
    target = forms.CharField(label="Target", required=False, max_length=255, help_text="Part of its name.")
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        return cleaned
