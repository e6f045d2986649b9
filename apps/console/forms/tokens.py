"""Forms for SCIM and API tokens. The secret itself is never a form field: the server makes it."""

from datetime import datetime, timedelta

from django import forms
from django.utils import timezone

from apps.directory.models import Group, User, UserStatus
from apps.directory.roles import can_manage_user, is_super_admin
from apps.scim_server.models import ScimTokenScope


class ScimTokenCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text='Who will use it, e.g. "Workday HR sync". Shown in the list and the audit log.',
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scope = forms.ChoiceField(
        label="Access",
        choices=ScimTokenScope.choices,
        initial=ScimTokenScope.READ_WRITE,
        widget=forms.RadioSelect,
        help_text="Read only: the client can list users and groups but change nothing.",
    )
    scope_group = forms.ModelChoiceField(
        label="Limit to one group",
        queryset=Group.objects.order_by("name").only("id", "name"),
        required=False,
        empty_label="No limit: every user and group",
        help_text="The client sees and manages only this group's members; users it creates join the group.",
    )
    manages_staff = forms.BooleanField(
        label="May change staff accounts",
        required=False,
        help_text=(
            "Off: administrators' accounts are read-only to this client (it cannot edit, suspend, delete or "
            "regroup them). Turn on only for a system that is the source of truth for staff too."
        ),
    )

    def __init__(self, *args, actor: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not is_super_admin(actor):  # only a super-admin may grant it (apps.scim_server.services)
            del self.fields["manages_staff"]


# Lifetimes offered for an API token (days; 0 for a token that does not expire).
API_TOKEN_LIFETIMES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("0", "Never expires")]


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text='What uses it, e.g. "Terraform" or "offboarding script".',
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    user = forms.ModelChoiceField(
        label="Acts as",
        queryset=User.objects.none(),
        help_text="The API allows the token what this staff account's role allows.",
    )
    lifetime = forms.ChoiceField(label="Expires", choices=API_TOKEN_LIFETIMES, initial="90")

    def __init__(self, *args, actor: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["user"].queryset = User.objects.filter(is_staff=True, status=UserStatus.ACTIVE).order_by("username")
        self.fields["user"].initial = actor.pk

    def clean_user(self) -> User:
        user = self.cleaned_data["user"]
        # A token acts with its owner's role: minting one for a higher-ranked account would be a promotion.
        if user.pk != self.actor.pk and not can_manage_user(self.actor, user):
            raise forms.ValidationError("You may not create tokens for an account that outranks yours.")
        return user

    def expires_at(self) -> datetime | None:
        days = int(self.cleaned_data["lifetime"])
        return timezone.now() + timedelta(days=days) if days else None
