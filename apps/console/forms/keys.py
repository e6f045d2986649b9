"""Forms of the Signing keys page."""

from django import forms
from django.conf import settings

from apps.saml_idp.keys import MAX_KEY_SIZE, MIN_KEY_SIZE


class NextKeyForm(forms.Form):
    key_size = forms.TypedChoiceField(
        label="Key size",
        coerce=int,
        choices=[(size, f"RSA {size} bits") for size in range(MIN_KEY_SIZE, MAX_KEY_SIZE + 1, 1024)],
        help_text="2048 bits is what most apps expect; larger keys sign more slowly.",
    )
    validity_days = forms.IntegerField(
        label="Certificate valid for (days)",
        min_value=30,
        max_value=36500,
        help_text="Apps check the certificate's dates only rarely, but the console warns 60 days before it ends.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key_size"].initial = settings.SAML_IDP_KEY_SIZE
        self.fields["validity_days"].initial = settings.SAML_IDP_KEY_VALIDITY_DAYS
