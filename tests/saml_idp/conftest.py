import re
from html import unescape

import pytest

from apps.connectors import services as connector_services
from apps.saml_idp import keys as key_services
from apps.saml_idp import server
from apps.saml_idp.keys import generate_key_pair
from tests.factories import GroupFactory, UserFactory
from tests.saml_idp.sp import SP_ACS_URL, SP_ENTITY_ID, OneLoginSP, sp_keys

_portal_keys: list = []


@pytest.fixture(autouse=True)
def _fast_keys(monkeypatch):
    """RSA key generation costs ~100 ms: the portal keys of one test process come from a small pool."""
    real = generate_key_pair
    pool = iter(_portal_keys)

    def pooled(*, key_size: int, validity_days: int, common_name: str):
        if key_size != 2048 or validity_days != 3650:
            return real(key_size=key_size, validity_days=validity_days, common_name=common_name)
        try:
            return next(pool)
        except StopIteration:
            generated = real(key_size=key_size, validity_days=validity_days, common_name=common_name)
            _portal_keys.append(generated)
            return generated

    monkeypatch.setattr(key_services, "generate_key_pair", pooled)
    yield
    server.forget_servers()


@pytest.fixture
def user(db):
    return UserFactory(
        username="jane.doe", email="jane.doe@example.com", first_name="Jane", last_name="Doe", password="s3cret-Pass-99"
    )


def make_connector(*, sso: dict | None = None, enabled: bool = True, name: str = "Test App", slug: str | None = None):
    settings = {"sp_entity_id": SP_ENTITY_ID, "acs_urls": [{"url": SP_ACS_URL}], **(sso or {})}
    return connector_services.connector_create(
        actor=None, template="generic-saml", name=name, slug=slug, enabled=enabled, sso=settings
    )


@pytest.fixture
def connector(db, user):
    connector = make_connector()
    group = GroupFactory(name="Engineering")
    from apps.directory import services as directory_services

    directory_services.group_add_members(actor=None, group=group, users=[user])
    connector_services.mappings_replace(
        actor=None,
        connector=connector,
        kind="saml",
        rows=[
            {"source": "email", "target": "email", "name_format": "basic"},
            {"source": "first_name", "target": "firstName", "name_format": "basic"},
            {"source": "last_name", "target": "lastName", "name_format": "basic"},
            {"source": "groups", "target": "groups", "name_format": "basic"},
            {"source": "{first_name}.{last_name}", "target": "handle", "name_format": ""},
        ],
    )
    connector_services.assignment_create(actor=None, connector=connector, group=group)
    return connector


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def idp_metadata(client, connector) -> bytes:
    response = client.get(f"/saml/idp/{connector.slug}/metadata")
    assert response.status_code == 200
    return response.content


@pytest.fixture
def sp_factory(client):
    def build(connector, **kwargs) -> OneLoginSP:
        return OneLoginSP(idp_metadata(client, connector), **kwargs)

    return build


_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'<form method="post" action="([^"]*)">')


def auto_post(response) -> tuple[str, dict[str, str]]:
    """The ACS URL and fields of our auto-submitting HTTP-POST form."""
    assert response.status_code == 200, response.content[:500]
    body = response.content.decode()
    action = _ACTION.search(body)
    assert action, body[:500]
    return unescape(action.group(1)), {name: unescape(value) for name, value in _FIELD.findall(body)}


__all__ = ["auto_post", "idp_metadata", "make_connector", "sp_keys"]
