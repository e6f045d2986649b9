"""Forms for Settings: the password and session policy, and upstream IdPs (delegated login)."""

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from apps.common.http import OutboundURLError, check_outbound_url
from apps.portal.policy import POLICY_LIMITS, SignInPolicyValues
from apps.saml_sp.models import GroupSync, MatchAttribute, UpstreamIdentityProvider
from apps.saml_sp.services import MAPPABLE_FIELDS

# --- Password and session policy ------------------------------------------------------------

# Form field -> (policy field, seconds per unit): admins think in minutes, the policy in seconds.
POLICY_FORM_FIELDS: dict[str, tuple[str, int]] = {
    "password_min_length": ("password_min_length", 1),
    "session_idle_minutes": ("session_idle_seconds", 60),
    "session_lifetime_minutes": ("session_lifetime_seconds", 60),
    "lockout_failure_limit": ("lockout_failure_limit", 1),
    "lockout_cooloff_minutes": ("lockout_cooloff_seconds", 60),
    "lockout_address_failure_limit": ("lockout_address_failure_limit", 1),
    "lockout_address_cooloff_minutes": ("lockout_address_cooloff_seconds", 60),
}


def _limits(policy_field: str, unit: int) -> dict[str, int]:
    low, high = POLICY_LIMITS[policy_field]
    return {"min_value": -(-low // unit), "max_value": high // unit}


class SignInPolicyForm(forms.Form):
    password_min_length = forms.IntegerField(
        label="Minimum password length",
        help_text="Characters. Applies to passwords set from now on (sign-up, reset, an admin setting one).",
        **_limits("password_min_length", 1),
    )
    mfa_required = forms.BooleanField(
        label="Require a second factor for everyone",
        required=False,
        help_text="People without one enrol an authenticator app or passkey right after their password. "
        "Staff always need one.",
    )
    session_idle_minutes = forms.IntegerField(
        label="Idle timeout (minutes)",
        help_text="A session with no request for this long is signed out.",
        **_limits("session_idle_seconds", 60),
    )
    session_lifetime_minutes = forms.IntegerField(
        label="Session lifetime (minutes)",
        help_text="Counted from sign-in, however active the session is: 480 minutes is 8 hours.",
        **_limits("session_lifetime_seconds", 60),
    )
    lockout_failure_limit = forms.IntegerField(
        label="Failed attempts before an account locks",
        help_text="Wrong passwords or codes for one account, from any address.",
        **_limits("lockout_failure_limit", 1),
    )
    lockout_cooloff_minutes = forms.IntegerField(
        label="Account lockout cool-off (minutes)",
        help_text="How long an account lockout lasts; 0 keeps it until an admin unlocks the account.",
        **_limits("lockout_cooloff_seconds", 60),
    )
    lockout_address_failure_limit = forms.IntegerField(
        label="Failed attempts before an address locks",
        help_text="Failures from one client address, whatever the accounts. Everyone behind that address "
        "(an office NAT, a VPN exit) is locked with it: keep it well above the account limit.",
        **_limits("lockout_address_failure_limit", 1),
    )
    lockout_address_cooloff_minutes = forms.IntegerField(
        label="Address lockout cool-off (minutes)",
        help_text="How long an address lockout lasts; it always lifts by itself.",
        **_limits("lockout_address_cooloff_seconds", 60),
    )

    @classmethod
    def initial_from(cls, policy: SignInPolicyValues) -> dict[str, Any]:
        initial: dict[str, Any] = {"mfa_required": policy.mfa_required}
        for form_field, (policy_field, unit) in POLICY_FORM_FIELDS.items():
            initial[form_field] = getattr(policy, policy_field) // unit
        return initial

    def policy_changes(self) -> dict[str, Any]:
        changes: dict[str, Any] = {"mfa_required": self.cleaned_data["mfa_required"]}
        for form_field, (policy_field, unit) in POLICY_FORM_FIELDS.items():
            changes[policy_field] = self.cleaned_data[form_field] * unit
        return changes

    @staticmethod
    def form_field_for(policy_field: str) -> str | None:
        if policy_field == "mfa_required":
            return policy_field
        for form_field, (name, _unit) in POLICY_FORM_FIELDS.items():
            if name == policy_field:
                return form_field
        return None


# --- Upstream IdPs (delegated login) --------------------------------------------------------

_MAPPING_LABELS = {
    "username": "Username",
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "display_name": "Display name",
    "employee_id": "Employee ID",
}


def mapping_field_name(field: str) -> str:
    return f"map_{field}"


class UpstreamForm(forms.Form):
    """Create (`upstream=None`) or edit an upstream IdP. `changes()` gives the service's arguments."""

    name = forms.CharField(label="Name", max_length=100, help_text='People see "Sign in with <name>".')
    slug = forms.SlugField(
        label="URL name",
        max_length=64,
        required=False,
        help_text="Part of the URLs the IdP is given (/saml/sp/<name>/...); made from the name when empty. "
        "It cannot change later.",
    )
    metadata_url = forms.CharField(
        label="Metadata URL",
        max_length=2000,
        required=False,
        help_text="The IdP's SAML metadata address (https). Fetched now and when you ask to refresh it.",
        widget=forms.URLInput(attrs={"inputmode": "url", "autocomplete": "off"}),
    )
    metadata_file = forms.FileField(
        label="Or upload the metadata XML",
        required=False,
        help_text="A file the IdP exported (one md:EntityDescriptor with a signing certificate).",
    )
    refresh_metadata = forms.BooleanField(
        label="Fetch the metadata again from its URL", required=False, help_text="After the IdP rotated its key."
    )
    match_attribute = forms.ChoiceField(
        label="Match people on", choices=MatchAttribute.choices, help_text="The directory field that identifies them."
    )
    match_saml_attribute = forms.CharField(
        label="SAML attribute holding it",
        max_length=255,
        required=False,
        help_text="Empty: the assertion's NameID. Otherwise an attribute name, e.g. mail or "
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress.",
    )
    jit_create = forms.BooleanField(
        label="Create unknown people on their first sign-in (just in time)",
        required=False,
        help_text="With the attributes mapped below; otherwise only people already in the directory can sign in.",
    )
    enforced = forms.BooleanField(
        label="Enforce: everyone signs in here (password sign-in off)",
        required=False,
        help_text="The sign-in page goes straight to this IdP. Superusers keep a password sign-in at "
        "/login/?local=1 for emergencies.",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    accept_idp_initiated = forms.BooleanField(
        label="Accept sign-ins started at the IdP",
        required=False,
        help_text="For the IdP's own app launcher (IdP-initiated, unsolicited responses). Off: only answers to the "
        "portal's own sign-in requests are accepted, which ties each answer to the browser that asked. On: the IdP "
        "can sign people in directly; each answer is still checked (signature, audience, recipient, age) and "
        "accepted once, and it may only lead to a page of this portal.",
    )
    single_logout = forms.BooleanField(
        label="Sign out of the IdP too",
        required=False,
        initial=True,
        help_text="Signing out of the portal then ends the IdP's session as well (when its metadata lists a "
        "single logout endpoint), and the IdP's sign-out ends the portal session it names.",
    )
    groups_attribute = forms.CharField(
        label="Groups from attribute",
        max_length=255,
        required=False,
        help_text="The SAML attribute naming the person's groups, e.g. groups or memberOf. Empty: groups are not "
        "taken from the IdP. Memberships it gives are updated at each sign-in; others are left alone; staff "
        "accounts' groups are never changed from the IdP.",
    )
    groups_sync = forms.ChoiceField(
        label="Groups the portal lacks",
        choices=GroupSync.choices,
        initial=GroupSync.JOIN_EXISTING,
        required=False,
        help_text="Join only groups that exist here, or create the missing ones.",
    )

    def __init__(self, *args, upstream: UpstreamIdentityProvider | None = None, **kwargs) -> None:
        self.upstream = upstream
        if upstream is not None:
            kwargs.setdefault("initial", self._initial_from(upstream))
        super().__init__(*args, **kwargs)
        for field in MAPPABLE_FIELDS:
            self.fields[mapping_field_name(field)] = forms.CharField(
                label=f"{_MAPPING_LABELS.get(field, field)} from attribute",
                max_length=255,
                required=False,
            )
        if upstream is None:
            del self.fields["refresh_metadata"]
        else:
            del self.fields["slug"]

    @staticmethod
    def _initial_from(upstream: UpstreamIdentityProvider) -> dict[str, Any]:
        initial = {
            name: getattr(upstream, name)
            for name in (
                "name",
                "metadata_url",
                "match_attribute",
                "match_saml_attribute",
                "jit_create",
                "enforced",
                "accept_idp_initiated",
                "single_logout",
                "groups_attribute",
                "groups_sync",
            )
        }
        initial["enabled"] = upstream.enabled
        for field, attribute in (upstream.attribute_mapping or {}).items():
            initial[mapping_field_name(field)] = attribute
        return initial

    def mapping_fields(self) -> list[forms.BoundField]:
        return [self[mapping_field_name(field)] for field in MAPPABLE_FIELDS]

    def clean_metadata_url(self) -> str:
        url = self.cleaned_data["metadata_url"].strip()
        if url:
            try:
                # Scheme and credentials now; the address it resolves to is checked when it is fetched.
                check_outbound_url(url, resolve=False)
            except OutboundURLError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return url

    def clean_metadata_file(self) -> str:
        upload: UploadedFile | None = self.cleaned_data.get("metadata_file")
        if not upload:
            return ""
        limit = settings.SAML_SP_MAX_METADATA_BYTES
        if upload.size and upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {limit // 1024} KB.")
        try:
            return upload.read(limit + 1).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError("The file is not UTF-8 text: upload the metadata XML itself.") from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        url, xml = cleaned.get("metadata_url"), cleaned.get("metadata_file")
        if url and xml and (self.upstream is None or url != self.upstream.metadata_url):
            self.add_error("metadata_file", "Give either a metadata URL or a file, not both.")
        elif self.upstream is None and not url and not xml and not self.has_error("metadata_url"):
            self.add_error("metadata_url", "Give the IdP's metadata URL, or upload its metadata file.")
        elif cleaned.get("refresh_metadata") and not url:
            self.add_error("refresh_metadata", "There is no metadata URL to fetch from.")
        return cleaned

    def _mapping(self) -> dict[str, str]:
        mapping = {}
        for field in MAPPABLE_FIELDS:
            attribute = self.cleaned_data.get(mapping_field_name(field), "").strip()
            if attribute:
                mapping[field] = attribute
        return mapping

    def changes(self) -> dict[str, Any]:
        """For a new IdP every field; for an edit only what differs (an unchanged URL is not fetched again)."""
        data = self.cleaned_data
        values: dict[str, Any] = {
            "name": data["name"].strip(),
            "match_attribute": data["match_attribute"],
            "match_saml_attribute": data["match_saml_attribute"].strip(),
            "jit_create": data["jit_create"],
            "attribute_mapping": self._mapping(),
            "enforced": data["enforced"],
            "enabled": data["enabled"],
            "accept_idp_initiated": data["accept_idp_initiated"],
            "single_logout": data["single_logout"],
            "groups_attribute": data["groups_attribute"].strip(),
            "groups_sync": data["groups_sync"] or GroupSync.JOIN_EXISTING,
        }
        xml = data.get("metadata_file") or ""
        if self.upstream is None:
            return {**values, "slug": data.get("slug", ""), "metadata_url": data["metadata_url"], "metadata_xml": xml}
        changes = {name: value for name, value in values.items() if getattr(self.upstream, name) != value}
        if xml:
            # The uploaded document replaces the URL: a later refresh must not overwrite it.
            changes.update(metadata_xml=xml, metadata_url="")
        elif data["metadata_url"] != self.upstream.metadata_url:
            changes["metadata_url"] = data["metadata_url"]
        if data.get("refresh_metadata") and "metadata_xml" not in changes:
            changes["refresh"] = True
        return changes
