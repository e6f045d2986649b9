"""Secrets: the downstream app's write-only token goes to its own URL and nowhere else.

Issue 12, item 3: "Test connection" with the token field left empty used to send the stored token to
whatever base URL was posted. An attacker's listener on loopback now receives nothing, from the
console or the API, and a saved URL change needs the token typed again.
"""

import pytest
from rest_framework.test import APIClient

from apps.api.services import api_token_create
from apps.audit.models import AuditEvent
from apps.common.crypto import decrypt_secret
from apps.connectors.models import Connector
from apps.directory.models import AdminRole
from tests.provisioning.downstream import FaultyScimServer
from tests.provisioning.helpers import make_connector
from tests.security.conftest import make_person, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def app_and_listener():
    """The real app the token belongs to, and the attacker's listener, both on loopback."""
    app, listener = FaultyScimServer().start(), FaultyScimServer().start()
    yield app, listener
    app.close()
    listener.close()


def _stored_token(connector: Connector) -> str:
    connector.provisioning.refresh_from_db()
    return decrypt_secret(connector.provisioning.token_ciphertext)


def test_console_test_connection_never_sends_the_stored_token_to_a_posted_url(app_and_listener):
    app, listener = app_and_listener
    connector = make_connector(app)
    client = signed_in(make_person("ada.admin", role=AdminRole.ADMIN))

    response = client.post(
        f"/console/connectors/{connector.slug}/identity/test/",
        {"base_url": listener.base_url, "token": ""},
        HTTP_HX_REQUEST="true",
    )

    assert "Enter the app&#x27;s token to test this URL" in response.content.decode()
    assert listener.requests == [] and app.requests == []
    event = AuditEvent.objects.get(action="provisioning.test_connection", target_id=str(connector.pk))
    assert event.after["url"] == listener.base_url and event.after["token"] == "stored"
    assert app.token not in str(event.after)


def test_api_test_connection_never_sends_the_stored_token_to_a_posted_url(app_and_listener):
    app, listener = app_and_listener
    connector = make_connector(app)
    _, secret = api_token_create(actor=None, user=make_person("ada.admin", role=AdminRole.ADMIN), name="api")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    report = api.post(
        f"/api/v1/connectors/{connector.pk}/test-connection", {"base_url": listener.base_url}, format="json"
    ).json()

    assert report["ok"] is False and "Enter the app's token" in report["error"]
    assert listener.requests == []
    # The stored URL still works with the stored token, and the typed token with any URL.
    assert api.post(f"/api/v1/connectors/{connector.pk}/test-connection", {}, format="json").json()["ok"] is True
    typed = {"base_url": listener.base_url, "token": listener.token}
    assert api.post(f"/api/v1/connectors/{connector.pk}/test-connection", typed, format="json").json()["ok"] is True
    assert {request.authorization for request in listener.requests} == {f"Bearer {listener.token}"}
    urls = [event.after["url"] for event in AuditEvent.objects.filter(action="provisioning.test_connection")]
    assert sorted(urls) == sorted([listener.base_url, app.base_url, listener.base_url])


def test_saving_a_new_url_without_the_token_is_refused_in_console_and_api(app_and_listener):
    app, listener = app_and_listener
    connector = make_connector(app)
    admin = make_person("ada.admin", role=AdminRole.ADMIN)
    client = signed_in(admin)
    form = {
        "enabled": "on",
        "base_url": listener.base_url,
        "token": "",
        "operations": ["create_users", "update_users", "deactivate_users", "push_groups"],
        "deprovision": "deactivate",
        "update_method": "patch",
        "rate_limit_per_second": "0",
        "group_members_per_request": "1000",
        "deprovision_threshold_count": "10",
        "deprovision_threshold_percent": "5",
    }

    page = client.post(f"/console/connectors/{connector.slug}/identity/", form)
    assert page.status_code == 400 and "enter the app&#x27;s token again" in page.content.decode()

    _, secret = api_token_create(actor=None, user=admin, name="api")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    refused = api.patch(
        f"/api/v1/connectors/{connector.pk}", {"provisioning": {"base_url": listener.base_url}}, format="json"
    )
    assert refused.status_code == 400 and "token" in refused.json()["provisioning"]

    connector.provisioning.refresh_from_db()
    assert connector.provisioning.base_url == app.base_url and _stored_token(connector) == app.token
    assert listener.requests == []
    # With the token typed again, the change is saved.
    accepted = api.patch(
        f"/api/v1/connectors/{connector.pk}",
        {"provisioning": {"base_url": listener.base_url, "token": listener.token}},
        format="json",
    )
    assert accepted.status_code == 200 and _stored_token(connector) == listener.token
