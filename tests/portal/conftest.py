import pytest
from django.core.cache import cache

from tests.factories import UserFactory

PASSWORD = "s3cret-Pass-99"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield


@pytest.fixture
def jane(db):
    return UserFactory(
        username="jane.doe", email="jane.doe@example.com", first_name="Jane", last_name="Doe", password=PASSWORD
    )


def totp_code(device, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows for `device`, now or `steps_ahead` 30-second steps later."""
    import time

    from django_otp.oath import TOTP

    generator = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    generator.time = time.time() + steps_ahead * device.step
    return f"{generator.token():0{device.digits}d}"


@pytest.fixture
def totp_device(jane):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=jane, name="Authenticator app", confirmed=True)


def sign_in(client, username: str = "jane.doe", password: str = PASSWORD, **extra):
    return client.post("/login/", {"username": username, "password": password, **extra})
