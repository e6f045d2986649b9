"""Group memberships from the upstream's `groups` attribute: joined (or created) through the directory's
services at each sign-in, only the upstream's own memberships taken back, staff accounts untouched."""

import pytest
from django.core.exceptions import ValidationError
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from apps.directory import services as directory_services
from apps.directory.models import Group, Membership, User
from apps.saml_sp import services
from apps.saml_sp.models import UpstreamGroupMembership
from tests.factories import UserFactory
from tests.saml_sp.conftest import sign_in_upstream

pytestmark = pytest.mark.django_db


def _groups(user) -> set[str]:
    return set(Group.objects.filter(memberships__user=user).values_list("name", flat=True))


def _sign_in_with_groups(client, upstream_idp, *groups: str, username: str = "alice"):
    upstream_idp.users[username].attributes["groups"] = list(groups)
    client.logout()
    response, _ = sign_in_upstream(client, upstream_idp, username)
    return response


@pytest.fixture
def alice(upstream_idp):
    user = UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    return user


def test_without_a_groups_attribute_nothing_changes(client, make_upstream, upstream_idp, alice):
    make_upstream()
    Group.objects.create(name="Engineering")
    assert _sign_in_with_groups(client, upstream_idp, "Engineering").status_code == 302
    assert _groups(alice) == set()
    assert not AuditEvent.objects.filter(action="saml_sp.groups.sync").exists()


def test_existing_groups_are_joined_and_missing_ones_only_noted_by_default(client, make_upstream, upstream_idp, alice):
    make_upstream(groups_attribute="groups")
    Group.objects.create(name="Engineering")
    assert _sign_in_with_groups(client, upstream_idp, "engineering", "Nowhere").status_code == 302
    assert _groups(alice) == {"Engineering"}
    assert not Group.objects.filter(name="Nowhere").exists()
    sync = AuditEvent.objects.get(action="saml_sp.groups.sync")
    assert sync.after["added"] == ["Engineering"] and sync.after["unknown"] == ["Nowhere"]
    # Through the directory's services: audited and provisioned like any other membership change.
    assert AuditEvent.objects.filter(action="group.members.add").count() == 1


def test_missing_groups_are_created_when_the_upstream_says_so(client, make_upstream, upstream_idp, alice):
    make_upstream(groups_attribute="groups", groups_sync="create_missing")
    assert _sign_in_with_groups(client, upstream_idp, "Engineering", "Interop Testers").status_code == 302
    assert _groups(alice) == {"Engineering", "Interop Testers"}
    assert AuditEvent.objects.filter(action="group.create").count() == 2


def test_memberships_from_the_upstream_follow_it_and_the_others_stay(client, make_upstream, upstream_idp, alice):
    make_upstream(groups_attribute="groups")
    engineering = Group.objects.create(name="Engineering")
    sales = Group.objects.create(name="Sales")
    admins_choice = Group.objects.create(name="Given by an admin")
    directory_services.group_add_members(actor=None, group=admins_choice, users=[alice])
    directory_services.group_add_members(actor=None, group=sales, users=[alice])  # also by an admin

    _sign_in_with_groups(client, upstream_idp, "Engineering", "Sales", "Given by an admin")
    assert _groups(alice) == {"Engineering", "Sales", "Given by an admin"}
    # Only Engineering came from the upstream.
    assert list(UpstreamGroupMembership.objects.values_list("group__name", flat=True)) == ["Engineering"]

    _sign_in_with_groups(client, upstream_idp)
    assert _groups(alice) == {"Sales", "Given by an admin"}
    assert not Membership.objects.filter(user=alice, group=engineering).exists()
    assert not UpstreamGroupMembership.objects.exists()
    assert AuditEvent.objects.filter(action="saml_sp.groups.sync").latest("created").after["removed"] == ["Engineering"]


def test_staff_accounts_groups_are_never_changed_from_an_assertion(client, make_upstream, upstream_idp):
    make_upstream(groups_attribute="groups", groups_sync="create_missing")
    admin = UserFactory(username="root", email="root@corp.example", is_staff=True, is_superuser=True)
    TOTPDevice.objects.create(user=admin, name="app", confirmed=True)
    kept = Group.objects.create(name="Kept")
    directory_services.group_add_members(actor=None, group=kept, users=[admin])
    upstream_idp.add_user("root", "pw", email="root@corp.example", groups=["Admins", "Everyone"])
    sign_in_upstream(client, upstream_idp, "root")
    assert _groups(admin) == {"Kept"}
    assert not Group.objects.filter(name__in=["Admins", "Everyone"]).exists()
    sync = AuditEvent.objects.get(action="saml_sp.groups.sync")
    assert sync.after["skipped"] == "staff_account"
    admin.refresh_from_db()
    assert admin.is_staff and admin.is_superuser


def test_an_assertion_grants_no_staff_rights_to_a_person_created_just_in_time(client, make_upstream, upstream_idp):
    make_upstream(jit_create=True, attribute_mapping={"first_name": "givenName"}, groups_attribute="groups")
    upstream_idp.add_user(
        "eve", "pw", email="eve@corp.example", givenName=["Eve"], is_staff=["true"], admin_role=["super_admin"]
    )
    sign_in_upstream(client, upstream_idp, "eve")
    eve = User.objects.get(email="eve@corp.example")
    assert not eve.is_staff and not eve.is_superuser and not eve.console_role


@pytest.mark.parametrize("field", ["is_staff", "is_superuser", "admin_role", "password"])
def test_attribute_mapping_cannot_reach_staff_fields(make_upstream, field):
    with pytest.raises(ValidationError) as refused:
        make_upstream(attribute_mapping={field: "anything"})
    assert "attribute_mapping" in refused.value.message_dict


def test_group_settings_are_validated_and_audited(make_upstream):
    upstream = make_upstream()
    with pytest.raises(ValidationError) as refused:
        services.upstream_update(actor=None, upstream=upstream, groups_sync="everything")
    assert "groups_sync" in refused.value.message_dict
    upstream.refresh_from_db()
    services.upstream_update(actor=None, upstream=upstream, groups_attribute=" memberOf ", groups_sync="create_missing")
    upstream.refresh_from_db()
    assert upstream.groups_attribute == "memberOf"
    event = AuditEvent.objects.filter(action="saml_sp.upstream.update").latest("created")
    assert event.after == {"groups_attribute": "memberOf", "groups_sync": "create_missing"}


def test_rule_based_groups_are_left_to_their_rule(client, make_upstream, upstream_idp, alice):
    from apps.directory.rules.services import group_rule_save

    make_upstream(groups_attribute="groups")
    ruled = Group.objects.create(name="Engineering")
    group_rule_save(
        actor=None, group=ruled, match="all", conditions=[{"attribute": "email", "op": "ew", "value": "@eng.example"}]
    )
    Group.objects.create(name="Sales")
    assert _sign_in_with_groups(client, upstream_idp, "Engineering", "Sales").status_code == 302
    assert _groups(alice) == {"Sales"}
    sync = AuditEvent.objects.get(action="saml_sp.groups.sync")
    assert sync.after["refused"] == ["Engineering (rule-based)"]
