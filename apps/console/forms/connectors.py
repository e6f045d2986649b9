"""Forms of the connector pages. They only shape input: the rules live in apps.connectors.services."""

from django import forms
from django.core.exceptions import ValidationError

from apps.connectors.attributes import GROUP_PROPERTIES, OIDC_CLAIM_PROPERTIES, USER_PROPERTIES
from apps.connectors.metadata import BINDING_POST, MAX_METADATA_BYTES
from apps.connectors.models import (
    Deprovision,
    DigestAlgorithm,
    EncryptionAlgorithm,
    KeyTransport,
    MappingKind,
    NameIdFormat,
    NameIdProperty,
    ProvisioningOperation,
    SignatureAlgorithm,
    UpdateMethod,
)

BINDING_CHOICES = [(BINDING_POST, "HTTP-POST")]
SIGN_CHOICES = [
    ("both", "The response and the assertion"),
    ("response", "The response"),
    ("assertion", "The assertion"),
]
NAME_FORMAT_CHOICES = [("", "(none)"), ("basic", "basic"), ("uri", "uri"), ("unspecified", "unspecified")]
_NAME_FORMAT_URNS = {
    "urn:oasis:names:tc:SAML:2.0:attrname-format:basic": "basic",
    "urn:oasis:names:tc:SAML:2.0:attrname-format:uri": "uri",
    "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified": "unspecified",
}


class CatalogSearchForm(forms.Form):
    q = forms.CharField(label="Search the catalog", required=False, max_length=100)


class ConnectorSearchForm(forms.Form):
    q = forms.CharField(label="Search connectors", required=False, max_length=100)


class GeneralForm(forms.Form):
    name = forms.CharField(label="Display label", max_length=100, help_text="What users see on their launchpad.")
    description = forms.CharField(
        label="Description", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    logo = forms.CharField(
        label="Logo",
        required=False,
        max_length=300,
        help_text="A catalog logo (connectors/logos/...) or an https URL of an image.",
    )
    bookmark_url = forms.CharField(
        label="Sign-in URL", required=False, max_length=2000, help_text="The page the launchpad tile opens."
    )

    def __init__(self, *args, bookmark: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not bookmark:
            del self.fields["bookmark_url"]

    def service_kwargs(self) -> dict:
        return dict(self.cleaned_data)


class SsoForm(forms.Form):
    sp_entity_id = forms.CharField(label="SP entity ID", required=False, max_length=512)
    sp_login_url = forms.CharField(
        label="SP login URL",
        required=False,
        max_length=2000,
        help_text="Where the launchpad starts sign-in, if the app has one.",
    )
    slo_url = forms.CharField(label="SP single logout URL", required=False, max_length=2000)
    nameid_format = forms.ChoiceField(label="NameID format", choices=NameIdFormat.choices)
    nameid_property = forms.ChoiceField(
        label="NameID source", choices=NameIdProperty.choices, help_text="The directory property sent as the NameID."
    )
    sign = forms.ChoiceField(label="Sign", choices=SIGN_CHOICES)
    signature_algorithm = forms.ChoiceField(label="Signature algorithm", choices=SignatureAlgorithm.choices)
    allow_sha1 = forms.BooleanField(
        label="Allow SHA-1 for this app (insecure: only if it accepts nothing else)", required=False
    )
    require_signed_requests = forms.BooleanField(label="AuthnRequests must be signed by the app", required=False)
    # Three rows that grow with what is pasted (field-sizing in console.css), not ten empty ones.
    sp_signing_cert = forms.CharField(
        label="SP signing certificate (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=20000,
    )
    sp_encryption_cert = forms.CharField(
        label="SP encryption certificate (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=20000,
        help_text="Importing the app's metadata fills it and switches encryption on.",
    )
    encrypt_assertions = forms.BooleanField(
        label="Encrypt assertions for this app", required=False, help_text="Needs the SP encryption certificate."
    )
    encrypt_name_id = forms.BooleanField(
        label="Encrypt the NameID too (EncryptedID), if the app asks for it", required=False
    )
    encryption_algorithm = forms.ChoiceField(
        label="Data encryption",
        choices=EncryptionAlgorithm.choices,
        required=False,
        help_text="Negotiated from the app's metadata: the strongest it lists, else AES-256-CBC, which every "
        "tested SP reads.",
    )
    key_transport = forms.ChoiceField(label="Key transport", choices=KeyTransport.choices, required=False)
    digest_algorithm = forms.ChoiceField(label="Digest algorithm", choices=DigestAlgorithm.choices, required=False)
    sp_metadata_url = forms.CharField(
        label="SP metadata URL (refreshed on a schedule)",
        required=False,
        max_length=2000,
        help_text="Certificate and endpoint changes found there are applied and audited; empty: never refreshed.",
    )
    assertion_lifetime_seconds = forms.IntegerField(label="Assertion lifetime (seconds)", min_value=30, max_value=3600)
    session_lifetime_seconds = forms.IntegerField(
        label="Session lifetime (seconds)", min_value=30, max_value=30 * 24 * 3600
    )

    @classmethod
    def initial_from(cls, sso) -> dict:
        initial = {name: getattr(sso, name) for name in cls.base_fields if hasattr(sso, name)}
        if sso.sign_response and sso.sign_assertion:
            initial["sign"] = "both"
        else:
            initial["sign"] = "response" if sso.sign_response else "assertion"
        return initial

    def service_changes(self) -> dict:
        data = dict(self.cleaned_data)
        # Choices left out of the form (an older page) keep the connector's value.
        for name in ("encryption_algorithm", "key_transport"):
            if not data.get(name):
                data.pop(name, None)
        sign = data.pop("sign")
        data["sign_response"] = sign in ("both", "response")
        data["sign_assertion"] = sign in ("both", "assertion")
        return data


class AcsRowForm(forms.Form):
    url = forms.CharField(label="ACS URL", max_length=2000, required=False)
    binding = forms.ChoiceField(label="Binding", choices=BINDING_CHOICES)
    index = forms.IntegerField(label="Index", min_value=0, max_value=65535, required=False)


AcsFormSet = forms.formset_factory(AcsRowForm, extra=0, can_delete=True, max_num=20, absolute_max=20)


def show_sp_hints(form: SsoForm, acs_formset, hints: dict[str, str], app: str) -> None:
    """What the app's own values look like (the catalog template's `sp_hints`), as placeholders
    and help beside the SP entity ID and the first ACS URL: the admin sees which URL to look for."""
    if hints.get("entity_id"):
        field = form.fields["sp_entity_id"]
        field.widget.attrs["placeholder"] = hints["entity_id"]
        field.help_text = f"{app}'s looks like {hints['entity_id']}"
    if hints.get("acs_url") and acs_formset.forms:
        acs_formset.forms[0].fields["url"].widget.attrs["placeholder"] = hints["acs_url"]


def acs_rows(formset) -> list[dict]:
    rows = []
    for form in formset.forms:
        data = getattr(form, "cleaned_data", None) or {}
        if not data or data.get("DELETE") or not data.get("url"):
            continue
        row = {"url": data["url"], "binding": data["binding"]}
        if data.get("index") is not None:
            row["index"] = data["index"]
        rows.append(row)
    return rows


class SpMetadataForm(forms.Form):
    file = forms.FileField(label="SP metadata file (XML)", required=False)
    url = forms.CharField(
        label="or SP metadata URL",
        required=False,
        max_length=2000,
        help_text="Fetched once by the portal; private, loopback and link-local addresses are refused.",
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        upload, url = cleaned.get("file"), (cleaned.get("url") or "").strip()
        if bool(upload) == bool(url):
            raise ValidationError("Choose the metadata file or give its URL (one of the two).")
        if upload is not None and upload.size > MAX_METADATA_BYTES:
            self.add_error("file", f"The file is larger than {MAX_METADATA_BYTES // 1024} KB.")
        cleaned["url"] = url
        return cleaned


class IdentityForm(forms.Form):
    enabled = forms.BooleanField(label="Identity Management on (provision users and groups over SCIM)", required=False)
    base_url = forms.CharField(
        label="SCIM base URL",
        required=False,
        max_length=2000,
        help_text="https://... as the app shows it, without /Users.",
    )
    token = forms.CharField(
        label="Bearer token",
        required=False,
        max_length=4096,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: the portal stores it encrypted and never shows it again.",
    )
    operations = forms.MultipleChoiceField(
        label="Operations", required=False, choices=ProvisioningOperation.choices, widget=forms.CheckboxSelectMultiple
    )
    deprovision = forms.ChoiceField(label="When a user loses access", choices=Deprovision.choices)
    update_method = forms.ChoiceField(label="Update method", choices=UpdateMethod.choices)
    rate_limit_per_second = forms.IntegerField(
        label="Rate limit (requests per second)", min_value=0, max_value=10_000, help_text="0 means no limit."
    )
    group_members_per_request = forms.IntegerField(
        label="Group members per request",
        min_value=1,
        max_value=10_000,
        help_text="A larger group is sent in PATCHes of at most this many members (many apps accept 1,000).",
    )
    deprovision_threshold_count = forms.IntegerField(label="Circuit breaker: users", min_value=0, max_value=1_000_000)
    deprovision_threshold_percent = forms.IntegerField(
        label="Circuit breaker: percent of the app's users",
        min_value=0,
        max_value=100,
        help_text="More deprovisionings than the larger of the two at once wait for an admin's approval.",
    )
    deprovision_unmanaged = forms.BooleanField(
        label="A full sync also deprovisions users the directory does not manage", required=False
    )

    def __init__(self, *args, token_is_set: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if token_is_set:
            self.fields["token"].label = "Replace the token"

    @classmethod
    def initial_from(cls, provisioning) -> dict:
        return {name: getattr(provisioning, name) for name in cls.base_fields if name != "token"}

    def service_changes(self) -> dict:
        data = dict(self.cleaned_data)
        if not data.get("token"):
            data.pop("token", None)  # left empty: keep the stored token
        return data


class ProbeForm(forms.Form):
    """Test connection: the URL and token being typed, else the stored ones."""

    base_url = forms.CharField(required=False, max_length=2000)
    token = forms.CharField(required=False, max_length=4096)


class MappingRowForm(forms.Form):
    source = forms.CharField(label="Directory property", max_length=255, required=False)
    target = forms.CharField(label="App attribute", max_length=255, required=False)
    name_format = forms.ChoiceField(label="Name format", choices=NAME_FORMAT_CHOICES, required=False)


MappingFormSet = forms.formset_factory(MappingRowForm, extra=0, can_delete=True, max_num=200, absolute_max=200)

MAPPING_TABLES = {
    MappingKind.SCIM_USER: ("SCIM user attributes", USER_PROPERTIES),
    MappingKind.SCIM_GROUP: ("SCIM group attributes", GROUP_PROPERTIES),
    MappingKind.SAML: ("SAML attributes", USER_PROPERTIES),
    MappingKind.OIDC: ("OIDC claims", OIDC_CLAIM_PROPERTIES),
}


def mapping_initial(mappings) -> list[dict]:
    return [
        {"source": m.source, "target": m.target, "name_format": _NAME_FORMAT_URNS.get(m.name_format, m.name_format)}
        for m in mappings
    ]


def mapping_rows(formset) -> tuple[list[dict], list[int]]:
    """The rows to save, and for each the index of the form it came from (to put errors back on it)."""
    rows, origins = [], []
    for position, form in enumerate(formset.forms):
        data = getattr(form, "cleaned_data", None) or {}
        if not data or data.get("DELETE") or not (data.get("source") or data.get("target")):
            continue
        rows.append({"source": data["source"], "target": data["target"], "name_format": data.get("name_format", "")})
        origins.append(position)
    return rows, origins


class AssignmentSearchForm(forms.Form):
    q = forms.CharField(label="Find users and groups", required=False, max_length=150)


class AssignmentAddForm(forms.Form):
    user = forms.UUIDField(required=False)
    group = forms.UUIDField(required=False)

    def clean(self) -> dict:
        cleaned = super().clean()
        if bool(cleaned.get("user")) == bool(cleaned.get("group")):
            raise ValidationError("Choose a user or a group.")
        return cleaned


# The Provisioning tab's counts, each a filter of the list below them (apps.provisioning.selectors).
REMOTE_STATE_FILTERS = [
    ("in_app", "In the app"),
    ("deactivated", "Deactivated in the app"),
    ("waiting", "Waiting to be sent"),
]


class RemoteObjectFilterForm(forms.Form):
    status = forms.ChoiceField(label="State", required=False)
    object_type = forms.ChoiceField(label="Type", required=False)

    def __init__(self, *args, **kwargs) -> None:
        from apps.provisioning.models import ObjectType, SyncStatus

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "All states"), *REMOTE_STATE_FILTERS, *SyncStatus.choices]
        self.fields["object_type"].choices = [("", "Users and groups"), *ObjectType.choices]
