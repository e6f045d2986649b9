from django import forms

from apps.directory.models import GROUP_NAME_MAX_LENGTH

# An upload bigger than this is refused before it is read (100,000 emails fit in about 3 MB).
CSV_MAX_BYTES = 5 * 1024 * 1024


class GroupFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=GROUP_NAME_MAX_LENGTH,
        help_text="Part of the name or description.",
        widget=forms.TextInput(attrs={"type": "search"}),
    )


class GroupForm(forms.Form):
    name = forms.CharField(label="Name", max_length=GROUP_NAME_MAX_LENGTH)
    description = forms.CharField(
        label="Description", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    external_id = forms.CharField(
        label="External ID",
        required=False,
        max_length=255,
        help_text="The id an HR system or upstream directory knows this group by.",
    )


class MemberImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="One username or email a line, or a CSV with a “username” or “email” column. Up to 100,000 rows.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > CSV_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size // 1024:,} KB; at most {CSV_MAX_BYTES // 1024 // 1024} MB.", code="too_big"
            )
        return upload
