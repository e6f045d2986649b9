"""The Sign-in (OIDC) tab's form, the secret rotation form and the tracer's claims preview form."""

from django import forms

from apps.connectors.models import OidcClientType, OidcSettings, OidcSubject
from apps.connectors.oidc_settings import SUPPORTED_SCOPES


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


class OidcForm(forms.Form):
    client_type = forms.ChoiceField(label="Client type", choices=OidcClientType.choices)
    redirect_uris = forms.CharField(
        label="Redirect URIs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, exactly as the app sends them: https, or http on 127.0.0.1, ::1 or localhost.",
    )
    post_logout_redirect_uris = forms.CharField(
        label="Post-logout redirect URIs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Where the app may send people back after it signs them out (RP-initiated logout).",
    )
    frontchannel_logout_uri = forms.CharField(
        label="Front-channel logout URI",
        required=False,
        max_length=2000,
        help_text="Loaded in a hidden frame when the person signs out of the portal.",
    )
    login_url = forms.CharField(
        label="App login URL",
        required=False,
        max_length=2000,
        help_text="Where the launchpad tile starts sign-in; without it, the tile sends an authorization request.",
    )
    allowed_scopes = forms.MultipleChoiceField(
        label="Allowed scopes",
        choices=[(scope, scope) for scope in SUPPORTED_SCOPES],
        widget=forms.CheckboxSelectMultiple,
    )
    sub_source = forms.ChoiceField(label="Subject (sub)", choices=OidcSubject.choices)
    access_token_lifetime_seconds = forms.IntegerField(label="Access token lifetime (seconds)", min_value=60)
    id_token_lifetime_seconds = forms.IntegerField(label="ID token lifetime (seconds)", min_value=60)
    refresh_token_lifetime_seconds = forms.IntegerField(
        label="Refresh token lifetime (seconds)", min_value=0, help_text="From the sign-in; 0 issues no refresh tokens."
    )
    require_mfa = forms.BooleanField(label="Every sign-in to this app needs a second factor", required=False)

    @classmethod
    def initial_from(cls, oidc: OidcSettings) -> dict:
        initial = {name: getattr(oidc, name) for name in cls.base_fields}
        initial["redirect_uris"] = "\n".join(oidc.redirect_uris)
        initial["post_logout_redirect_uris"] = "\n".join(oidc.post_logout_redirect_uris)
        return initial

    def service_changes(self) -> dict:
        data = dict(self.cleaned_data)
        data["redirect_uris"] = _lines(data["redirect_uris"])
        data["post_logout_redirect_uris"] = _lines(data["post_logout_redirect_uris"])
        data["allowed_scopes"] = list(data["allowed_scopes"])
        return data


class SecretRotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        label="Keep the previous secret working for (hours)",
        min_value=0,
        max_value=720,
        initial=24,
        help_text="0 ends it at once.",
    )


class ClaimsPreviewForm(forms.Form):
    user = forms.CharField(label="Username or email", max_length=254)
