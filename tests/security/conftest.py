"""The attacker's suite: each test performs one attack through the real entry point and asserts the
refusal and that nothing changed. People sign in as a person would: password, then a TOTP code."""

import pytest
from django.core.cache import cache
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.directory import services as directory
from apps.directory.models import AdminRole, User
from tests.factories import UserFactory
from tests.portal.conftest import totp_code

# The fixtures of the features under attack, reused rather than copied.
from tests.saml_idp.conftest import _fast_keys, connector, sp_factory, user  # noqa: F401

PASSWORD = "s3cret-Pass-99"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield


def make_person(username: str, *, role: str = "", email: str = "", **extra) -> User:
    """A directory user with a password and an authenticator app; staff when `role` is given."""
    person = UserFactory(username=username, email=email or f"{username}@corp.example", password=PASSWORD, **extra)
    if role:
        directory.user_set_admin_role(actor=None, user=person, role=role)
    TOTPDevice.objects.create(user=person, name="Authenticator app", confirmed=True)
    return person


def signed_in(person: User, *, password: str = PASSWORD) -> Client:
    """A browser session that typed the password and then the authenticator app's current code."""
    client = Client()
    first = client.post("/login/", {"username": person.username, "password": password})
    assert first.status_code == 302 and first["Location"].startswith("/login/mfa/"), first.content[:300]
    device = TOTPDevice.objects.get(user=person)
    second = client.post("/login/mfa/", {"code": totp_code(device)})
    assert second.status_code == 302, second.content[:300]
    client.user = person
    return client


@pytest.fixture
def super_admin(db) -> User:
    return make_person("root.super", role=AdminRole.SUPER_ADMIN)


@pytest.fixture
def admin(db) -> User:
    return make_person("ada.admin", role=AdminRole.ADMIN)


@pytest.fixture
def helpdesk(db) -> User:
    return make_person("hal.helpdesk", role=AdminRole.HELPDESK)


@pytest.fixture
def readonly(db) -> User:
    return make_person("rita.readonly", role=AdminRole.READONLY)
