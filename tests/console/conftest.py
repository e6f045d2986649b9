"""Console clients for each role: signed in with a password and a second factor, as admins are."""

import time

import pytest
from django.core.cache import cache
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.directory import services as directory
from apps.directory.models import AdminRole, User
from apps.portal.services import LAST_SEEN_KEY, SIGNED_IN_AT_KEY
from tests.factories import UserFactory

PASSWORD = "s3cret-Pass-99"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield


def make_staff(role: str, username: str | None = None) -> User:
    user = UserFactory(username=username or f"{role}.admin", password=PASSWORD)
    directory.user_set_admin_role(actor=None, user=user, role=role)
    TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    return user


def console_client(user: User, *, signed_in_seconds_ago: int = 0) -> Client:
    """A client whose session passed the password and TOTP `signed_in_seconds_ago` seconds ago."""
    client = Client()
    client.force_login(user, backend="apps.portal.backends.PortalBackend")
    session = client.session
    device = TOTPDevice.objects.filter(user=user).first()
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    now = int(time.time())
    session[SIGNED_IN_AT_KEY] = now - signed_in_seconds_ago
    session[LAST_SEEN_KEY] = now
    session.save()
    return client


@pytest.fixture
def super_admin(db) -> User:
    return make_staff(AdminRole.SUPER_ADMIN)


@pytest.fixture
def admin(db) -> User:
    return make_staff(AdminRole.ADMIN)


@pytest.fixture
def helpdesk(db) -> User:
    return make_staff(AdminRole.HELPDESK)


@pytest.fixture
def readonly(db) -> User:
    return make_staff(AdminRole.READONLY)


@pytest.fixture
def super_client(super_admin) -> Client:
    return console_client(super_admin)


@pytest.fixture
def admin_client(admin) -> Client:
    return console_client(admin)


@pytest.fixture
def helpdesk_client(helpdesk) -> Client:
    return console_client(helpdesk)


@pytest.fixture
def readonly_client(readonly) -> Client:
    return console_client(readonly)
