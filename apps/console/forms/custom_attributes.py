from django import forms

from apps.directory.models import CUSTOM_ATTRIBUTE_NAME_MAX_LENGTH, CustomAttributeType


class CustomAttributeForm(forms.Form):
    """A custom attribute definition; the names match `directory.custom_attributes`' services."""

    name = forms.CharField(
        label="Name",
        max_length=CUSTOM_ATTRIBUTE_NAME_MAX_LENGTH,
        help_text="Letters, digits and _, starting with a letter. Mappings and group rules use it as "
        "custom.<name>; it cannot change later.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    label = forms.CharField(label="Label", max_length=150, help_text="What people see on the user page.")
    description = forms.CharField(
        label="Description", required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )
    type = forms.ChoiceField(label="Type", choices=CustomAttributeType.choices, initial=CustomAttributeType.STRING)
    choices = forms.CharField(
        label="Choices",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For “One of a list”: one choice a line.",
    )
    multi_valued = forms.BooleanField(label="Several values", required=False)
    required = forms.BooleanField(
        label="Required", required=False, help_text="New users must have a value; a value cannot be removed."
    )

    def __init__(self, *args, editing: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "The name cannot change: mappings and group rules use it."

    def clean_choices(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data.get("choices", "").splitlines() if line.strip()]
