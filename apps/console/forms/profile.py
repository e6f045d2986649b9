"""The profile part of the user form: Work, Contact, Locale and Custom attributes sections.

`ProfileEditor` holds the section form (text fields, the manager, the custom attributes) and one
formset per multi-valued attribute (emails, phone numbers, addresses, photos), and turns them into
the keyword arguments of `directory.services.user_create` / `user_update`. The directory cleans and
checks every value again (the rule lives there); the forms give each error a field to stand on.
"""

from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from apps.directory.models import (
    LANGUAGE_TAG_MAX_LENGTH,
    PROFILE_TEXT_MAX_LENGTH,
    TIMEZONE_MAX_LENGTH,
    URL_MAX_LENGTH,
    CustomAttribute,
    CustomAttributeType,
    User,
)

CUSTOM_FIELD_PREFIX = "custom__"
ENTRY_TYPES = ("work", "home", "mobile", "other")
MAX_ENTRIES = 20
_TEXT = {"maxlength": PROFILE_TEXT_MAX_LENGTH}

# Section -> the fields of ProfileForm it shows, in order (the custom attributes have their own).
SECTIONS: dict[str, tuple[str, ...]] = {
    "Work": ("title", "department", "division", "organization", "cost_center", "user_type", "manager"),
    "Locale": ("preferred_language", "locale", "timezone"),
    "Contact": ("nick_name", "profile_url"),
}
TEXT_FIELDS = (
    "title", "department", "division", "organization", "cost_center", "user_type", "preferred_language", "locale",
    "timezone", "nick_name", "profile_url",
)  # fmt: skip


def _text(label: str, max_length: int = PROFILE_TEXT_MAX_LENGTH, help_text: str = "") -> forms.CharField:
    return forms.CharField(label=label, required=False, max_length=max_length, help_text=help_text)


class ProfileForm(forms.Form):
    title = _text("Job title")
    department = _text("Department")
    division = _text("Division")
    organization = _text("Organization")
    cost_center = _text("Cost center")
    user_type = _text("User type", help_text="Employee, Contractor, Intern...")
    manager = forms.UUIDField(
        label="Manager", required=False, widget=forms.HiddenInput, error_messages={"invalid": "Choose a person."}
    )
    preferred_language = _text("Preferred language", LANGUAGE_TAG_MAX_LENGTH, help_text="e.g. en-US, or da, en;q=0.8")
    locale = _text("Locale", LANGUAGE_TAG_MAX_LENGTH, help_text="e.g. en-US")
    timezone = _text("Time zone", TIMEZONE_MAX_LENGTH, help_text="An IANA name, e.g. Europe/Paris")
    nick_name = _text("Nickname")
    profile_url = _text("Profile URL", URL_MAX_LENGTH, help_text="https://...")

    def __init__(self, *args: Any, definitions: list[CustomAttribute] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.definitions = list(definitions)
        for definition in self.definitions:
            self.fields[CUSTOM_FIELD_PREFIX + definition.name] = custom_field(definition)

    def custom_fields(self) -> list[forms.BoundField]:
        return [self[CUSTOM_FIELD_PREFIX + definition.name] for definition in self.definitions]

    def custom_values(self) -> dict[str, Any]:
        """Name -> value of every custom attribute, as the directory's services take them."""
        values: dict[str, Any] = {}
        for definition in self.definitions:
            value = self.cleaned_data.get(CUSTOM_FIELD_PREFIX + definition.name)
            if definition.multi_valued and isinstance(value, str):
                value = [line.strip() for line in value.splitlines() if line.strip()]
            if value in ("", None, []):
                continue
            values[definition.name] = value
        return values


_BOOLEAN_CHOICES = [("", "Not set"), ("true", "Yes"), ("false", "No")]


def custom_field(definition: CustomAttribute) -> forms.Field:
    """A form field for one custom attribute; the directory coerces and checks what it gives."""
    common = {"label": definition.label or definition.name, "required": definition.required,
              "help_text": definition.description}  # fmt: skip
    kind = definition.type
    if kind == CustomAttributeType.ENUM:
        choices = [(choice, choice) for choice in definition.choices or ()]
        if definition.multi_valued:
            return forms.MultipleChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple, **common)
        return forms.ChoiceField(choices=[("", "Not set"), *choices], **common)
    if kind == CustomAttributeType.BOOLEAN and not definition.multi_valued:
        return forms.ChoiceField(choices=_BOOLEAN_CHOICES, **common)
    if definition.multi_valued:
        common["help_text"] = " ".join(filter(None, [definition.description, "One value a line."]))
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **common)
    if kind == CustomAttributeType.DATE:
        return forms.CharField(widget=forms.DateInput(attrs={"type": "date"}), max_length=10, **common)
    if kind == CustomAttributeType.NUMBER:
        return forms.CharField(widget=forms.TextInput(attrs={"inputmode": "decimal"}), max_length=40, **common)
    return forms.CharField(max_length=1000, **common)


def _custom_initial(definition: CustomAttribute, value: Any) -> Any:
    if value is None:
        return None
    if definition.multi_valued and definition.type != CustomAttributeType.ENUM:
        return "\n".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


# --- Multi-valued attributes: one row per entry -----------------------------------------------------


class _EntryForm(forms.Form):
    type = forms.CharField(
        label="Type", required=False, max_length=64, widget=forms.TextInput(attrs={"list": "entry-types"})
    )

    def entry(self) -> dict[str, Any] | None:
        """The entry this row gives (None for a blank or removed row)."""
        data = getattr(self, "cleaned_data", None) or {}
        if not data or data.get("DELETE") or not self.has_changed():
            return None
        return {key: value for key, value in data.items() if key != "DELETE"}


class EmailEntryForm(_EntryForm):
    value = forms.EmailField(label="Email", required=False, max_length=254)


class PhoneEntryForm(_EntryForm):
    value = forms.CharField(label="Phone number", required=False, max_length=64)
    primary = forms.BooleanField(label="Primary", required=False)


class PhotoEntryForm(_EntryForm):
    value = forms.URLField(label="Photo URL", required=False, max_length=URL_MAX_LENGTH, assume_scheme="https")
    primary = forms.BooleanField(label="Primary", required=False)


class AddressEntryForm(_EntryForm):
    street_address = forms.CharField(label="Street", required=False, max_length=255)
    locality = forms.CharField(label="City", required=False, max_length=255)
    region = forms.CharField(label="Region", required=False, max_length=255)
    postal_code = forms.CharField(label="Postal code", required=False, max_length=255)
    country = forms.CharField(label="Country", required=False, max_length=255)
    primary = forms.BooleanField(label="Primary", required=False)


class _EntryFormSet(forms.BaseFormSet):
    """Rows of one multi-valued attribute: a value is needed in a row that has anything, and at most
    one row is primary (RFC 7643 2.4)."""

    noun = "entry"

    def clean(self) -> None:
        if any(self.errors):
            return
        entries = [form.entry() for form in self.forms]
        for form, entry in zip(self.forms, entries, strict=True):
            if entry is not None and "value" in form.fields and not entry.get("value"):
                form.add_error("value", f"Enter the {self.noun}, or tick Remove.")
        if sum(1 for entry in entries if entry and entry.get("primary")) > 1:
            raise ValidationError(f"Only one {self.noun} can be primary.", code="primary")


def _formset(form: type[forms.Form], noun: str) -> type[forms.BaseFormSet]:
    base = type(f"{form.__name__}Set", (_EntryFormSet,), {"noun": noun})
    return forms.formset_factory(form, formset=base, extra=1, can_delete=True, max_num=MAX_ENTRIES,
                                 absolute_max=MAX_ENTRIES, validate_max=True)  # fmt: skip


# field -> (form set class, title, noun)
ENTRY_LISTS: dict[str, tuple[type[forms.BaseFormSet], str]] = {
    "emails": (_formset(EmailEntryForm, "email"), "Other emails"),
    "phone_numbers": (_formset(PhoneEntryForm, "phone number"), "Phone numbers"),
    "addresses": (_formset(AddressEntryForm, "address"), "Addresses"),
    "photos": (_formset(PhotoEntryForm, "photo"), "Photos"),
}


def _entry_initial(field: str, items: list[dict]) -> list[dict]:
    keys = set(ENTRY_LISTS[field][0].form.base_fields)
    return [{key: value for key, value in item.items() if key in keys} for item in items or []]


class ProfileEditor:
    """The profile sections of one user form: bound together, checked together, saved as one change."""

    def __init__(self, data: Any, *, account: User | None, definitions: list[CustomAttribute]) -> None:
        # A post without the sections (an older page, a script) changes none of the profile.
        if data is not None and "emails-TOTAL_FORMS" not in data:
            data = None
        self.submitted = data is not None
        self.account = account
        self.initial = self._initial(account, definitions)
        self.form = ProfileForm(data, initial=self.initial, definitions=definitions)
        self.formsets = {
            field: formset_class(data, prefix=field, initial=_entry_initial(field, self.initial[field]))
            for field, (formset_class, _) in ENTRY_LISTS.items()
        }
        for field, formset in self.formsets.items():
            formset.title = ENTRY_LISTS[field][1]  # names its rows in the error summary

    @staticmethod
    def _initial(account: User | None, definitions: list[CustomAttribute]) -> dict[str, Any]:
        initial: dict[str, Any] = {name: getattr(account, name, "") if account else "" for name in TEXT_FIELDS}
        initial["manager"] = account.manager_id if account else None
        for field in ENTRY_LISTS:
            initial[field] = list(getattr(account, field, None) or []) if account else []
        stored = (account.custom_attributes or {}) if account else {}
        for definition in definitions:
            initial[CUSTOM_FIELD_PREFIX + definition.name] = _custom_initial(definition, stored.get(definition.name))
        return initial

    def is_valid(self) -> bool:
        if not self.submitted:
            return True
        valid = self.form.is_valid()
        return all([valid, *(formset.is_valid() for formset in self.formsets.values())])

    def changes(self) -> dict[str, Any]:
        """The profile keyword arguments that differ from the account's (all of them for a new user)."""
        if not self.submitted:
            return {}
        data = self.form.cleaned_data
        values: dict[str, Any] = {name: data[name] for name in TEXT_FIELDS}
        values["manager"] = data["manager"]
        for field, formset in self.formsets.items():
            values[field] = [entry for entry in (form.entry() for form in formset.forms) if entry is not None]
        values["custom_attributes"] = self.form.custom_values()
        if self.account is None:
            return {name: value for name, value in values.items() if value not in ("", None, [], {})}
        current = {**self.initial, "custom_attributes": dict(self.account.custom_attributes or {})}
        for field in ENTRY_LISTS:
            current[field] = [_comparable(item) for item in current[field]]
        return {
            name: value
            for name, value in values.items()
            if ([_comparable(item) for item in value] if name in ENTRY_LISTS else value) != current[name]
        }

    def add_service_errors(self, error: ValidationError) -> list[str]:
        """Put the directory's errors on the fields they name; return the ones that name none here."""
        left: list[str] = []
        for name, texts in error.message_dict.items():
            field = CUSTOM_FIELD_PREFIX + name.split(".", 1)[1] if name.startswith("custom_attributes.") else name
            if field in self.form.fields:
                self.form.add_error(field, texts)
            elif name in self.formsets:
                formset = self.formsets[name]
                formset._non_form_errors = formset.error_class([*formset.non_form_errors(), *texts])
            elif name != NON_FIELD_ERRORS:
                left.extend(f"{name}: {text}" for text in texts)
            else:
                left.extend(texts)
        return left

    def manager_choice(self) -> User | None:
        """The person the manager field names now (as posted, or the account's)."""
        value = self.form["manager"].value()
        if not value:
            return None
        try:
            return User.objects.filter(pk=value).only("id", "username", "display_name", "email").first()
        except ValidationError:
            return None


def _comparable(item: dict) -> dict:
    """An entry without empty parts, so that a stored one and the same one posted compare equal."""
    return {key: value for key, value in item.items() if value not in ("", None, False)}
