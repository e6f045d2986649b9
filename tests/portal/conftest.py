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
