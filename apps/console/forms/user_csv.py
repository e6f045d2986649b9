from django import forms

from apps.console.forms.groups import CSV_MAX_BYTES


class UserImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="The columns of an export: a “username” column, then any attribute (custom ones as "
        "“custom.name”). Only the file's columns change; an empty cell clears one.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > CSV_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size // 1024:,} KB; at most {CSV_MAX_BYTES // 1024 // 1024} MB.", code="too_big"
            )
        return upload
