"""Downstream URLs that the portal refuses, and bearer tokens that never appear in clear."""

import logging

import pytest
from django.apps import apps as django_apps
from django.core import serializers

from apps.audit.models import AuditEvent
from apps.provisioning import claims, tasks
from apps.provisioning.models import Delivery
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, make_due, run, sync

pytestmark = pytest.mark.django_db


def _patch_base_url(api_client, connector, url, **provisioning):
    body = {"provisioning": {"base_url": url, **provisioning}}
    return api_client.patch(f"/api/v1/connectors/{connector.pk}", body, format="json")


def _create_with_base_url(api_client, url):
    return api_client.post(
        "/api/v1/connectors",
        {"template": "generic-scim", "provisioning": {"base_url": url, "token": "t0ken"}},
        format="json",
    )


def _base_url_errors(response) -> list[str]:
    assert response.status_code == 400, response.content
    return response.json()["provisioning"]["base_url"]


REFUSED = [
    ("ftp://93.184.216.34/scim", "Only http and https"),
    ("file:///etc/passwd", "Only http and https"),
    ("gopher://93.184.216.34/", "Only http and https"),
    ("http://10.1.2.3/scim/v2", "private, loopback or link-local"),
    ("http://192.168.0.10/scim/v2", "private, loopback or link-local"),
    ("http://172.16.5.4/scim/v2", "private, loopback or link-local"),
    ("http://169.254.169.254/latest/meta-data", "private, loopback or link-local"),
    ("http://[fe80::1]/scim/v2", "private, loopback or link-local"),
    ("http://[fd00::1]/scim/v2", "private, loopback or link-local"),
    ("http://0.0.0.0:8080/scim/v2", "private, loopback or link-local"),
    ("http://user:secret@93.184.216.34/scim/v2", "Credentials in the URL"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_base_url_must_be_http_or_https_to_a_public_address(api_client, url, reason):
    assert any(reason in error for error in _base_url_errors(_create_with_base_url(api_client, url)))


@pytest.mark.parametrize(("url", "reason"), REFUSED[::3])
def test_base_url_is_checked_when_it_is_changed_too(downstream, api_client, url, reason):
    connector = make_connector(downstream)

    assert any(reason in error for error in _base_url_errors(_patch_base_url(api_client, connector, url)))
    connector.provisioning.refresh_from_db()
    assert connector.provisioning.base_url == downstream.base_url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/scim/v2", "http://localhost:8080/scim/v2", "http://[::1]/scim"])
def test_loopback_is_refused_unless_a_setting_allows_it(api_client, settings, url):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    assert any("loopback" in error for error in _base_url_errors(_create_with_base_url(api_client, url)))

    settings.OUTBOUND_ALLOW_LOOPBACK = True
    response = _create_with_base_url(api_client, url)
    assert response.status_code == 201, response.content
    assert response.json()["provisioning"]["base_url"] == url


def test_private_networks_are_a_setting_but_link_local_never(api_client, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True

    assert _create_with_base_url(api_client, "https://10.1.2.3/scim/v2").status_code == 201
    assert _base_url_errors(_create_with_base_url(api_client, "http://169.254.169.254/"))


def test_plain_http_to_a_public_host_is_refused_the_token_would_travel_in_clear(api_client):
    errors = _base_url_errors(_create_with_base_url(api_client, "http://93.184.216.34/scim/v2"))

    assert any("must use https" in error for error in errors)


def test_public_https_url_is_accepted(api_client):
    response = _create_with_base_url(api_client, "https://93.184.216.34/scim/v2")

    assert response.status_code == 201, response.content
    assert response.json()["provisioning"]["base_url"] == "https://93.184.216.34/scim/v2"


def test_a_valid_base_url_can_be_changed(downstream, api_client):
    connector = make_connector(downstream)

    # A new address needs the token again (tests/security: the stored one never follows the URL).
    response = _patch_base_url(api_client, connector, "https://93.184.216.34/scim/v2", token="new-t0ken")

    assert response.status_code == 200, response.content
    assert response.json()["provisioning"]["base_url"] == "https://93.184.216.34/scim/v2"


def test_test_connection_refuses_a_link_local_url_without_contacting_it(downstream, api_client):
    connector = make_connector(downstream)

    report = api_client.post(
        f"/api/v1/connectors/{connector.pk}/test-connection",
        {"base_url": "http://169.254.169.254/latest"},
        format="json",
    ).json()

    assert report["ok"] is False
    assert "link-local" in report["error"]
    assert report["checks"] == []


def test_the_worker_does_not_contact_an_address_the_settings_refuse(downstream, settings):
    # Stored while loopback was allowed (or a public name that later resolves to loopback).
    connector = make_connector(downstream, base_url=downstream.base_url.replace("127.0.0.1", "localhost"))
    alice = UserFactory(username="alice")
    assign(connector, user=alice)
    settings.OUTBOUND_ALLOW_LOOPBACK = False

    run(connector)

    assert downstream.count() == 0


# --- Tokens never in clear ---------------------------------------------------------------------


def test_bearer_token_never_appears_in_logs_deliveries_api_or_database(
    downstream, api_client, caplog, django_capture_on_commit_callbacks, monkeypatch
):
    token = downstream.token
    caplog.set_level(logging.DEBUG)
    enqueued = []
    monkeypatch.setattr(tasks.process_connector, "apply_async", lambda *a, **kw: enqueued.append((a, kw)))

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/v1/connectors",
            {
                "template": "generic-scim",
                "name": "Secret app",
                "enabled": True,
                "provisioning": {"enabled": True, "base_url": downstream.base_url, "token": token},
            },
            format="json",
        )
    assert response.status_code == 201, response.content
    assert token not in response.content.decode()
    from apps.connectors.models import Connector

    connector = Connector.objects.get(pk=response.json()["id"])
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    with django_capture_on_commit_callbacks(execute=True):
        assign(connector, group=GroupFactory(name="Staff", members=[alice, bob]))
    downstream.fail(500, method="POST", path="/Users")  # an error path too
    downstream.fail(401, method="POST", path="/Groups")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.process_connector(str(connector.pk))
        make_due(connector)
        tasks.process_connector(str(connector.pk))
    assert downstream.users

    # The app did receive it, as a bearer token ...
    assert {r.authorization for r in downstream.calls()} == {f"Bearer {token}"}
    # ... but it is nowhere else: task arguments, logs, the delivery log, the API, the database.
    assert enqueued
    assert all(token not in repr(call) for call in enqueued)
    assert token not in caplog.text
    for delivery in Delivery.objects.all():
        assert token not in f"{delivery.path} {delivery.request_body} {delivery.error}"
    for path in ("provisioning", "deliveries", ""):
        body = api_client.get(f"/api/v1/connectors/{connector.pk}/{path}".rstrip("/")).content.decode()
        assert token not in body
    assert not any(token in str(event.after) + str(event.before) for event in AuditEvent.objects.all())
    for model in django_apps.get_models():
        dumped = serializers.serialize("json", model.objects.all())
        assert token not in dumped, f"the token is stored in clear in {model._meta.label}"
    assert connector.provisioning.token_ciphertext  # stored, encrypted


def test_bearer_token_is_not_in_client_errors(downstream, monkeypatch):
    """Even an exception raised while sending carries no token (it would reach last_error and logs)."""
    connector = make_connector(downstream)
    alice = UserFactory(username="alice")
    assign(connector, user=alice)
    downstream.stop()

    run(connector)
    downstream.start()
    sync(connector)

    from apps.provisioning.models import RemoteObject

    for remote in RemoteObject.objects.filter(connector=connector):
        assert downstream.token not in remote.last_error
    for delivery in Delivery.objects.filter(connector=connector):
        assert downstream.token not in delivery.error
    assert claims.WORKER_ID not in downstream.token
