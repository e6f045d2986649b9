"""The SSO path caches the sign-in policy and the connector with its SSO settings and signing key
(apps.common.generations), and a change takes effect at the very next request: made in this
process through a service or a bare UPDATE, or in another process entirely."""

import base64
import os
import subprocess
import sys
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.connectors import services as connector_services
from apps.connectors.models import SsoSettings
from apps.portal.policy import sign_in_policy_update
from apps.portal.services import LAST_SEEN_KEY, SIGNED_IN_AT_KEY
from apps.saml_idp import keys
from tests.conftest import PROJECT_ROOT, _database_url_for_subprocess
from tests.saml_idp.conftest import auto_post

# A launchpad tile's GET, as the browser sends it from the portal's own page.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def session_client(client, user):
    """Signed in a quarter of an hour ago, active a minute ago (the idle-timeout middleware acts)."""
    client.force_login(user)
    session = client.session
    now = int(time.time())
    session[SIGNED_IN_AT_KEY] = now - 1000
    session[LAST_SEEN_KEY] = now - 60
    session.save()
    return client


def _launch(client, connector):
    return client.get(f"/saml/idp/{connector.slug}/launch", headers=SAME_ORIGIN)


def _signed_with(response) -> bytes:
    _, fields = auto_post(response)
    return base64.b64decode(fields["SAMLResponse"])


def _cached_statements(client, connector) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = _launch(client, connector)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def test_settings_are_read_once_then_cached(session_client, connector):
    keys.ensure_active_key()  # else the first sign-in makes it, a change of what is cached
    first = _cached_statements(session_client, connector)
    assert any("connectors_ssosettings" in sql for sql in first)
    again = _cached_statements(session_client, connector)
    assert not any("connectors_ssosettings" in sql or "portal_signinpolicy" in sql for sql in again)
    # The assignment and the user are read at every sign-in, and the audit row is written.
    assert any("connectors_assignment" in sql for sql in again)
    assert any(sql.startswith("INSERT INTO") and "audit_auditevent" in sql for sql in again)


def test_connector_change_takes_effect_at_the_next_request(session_client, connector):
    assert _launch(session_client, connector).status_code == 200
    connector_services.connector_update(actor=None, connector=connector, enabled=False)
    assert _launch(session_client, connector).status_code == 403
    connector_services.connector_update(actor=None, connector=connector, enabled=True)
    assert _launch(session_client, connector).status_code == 200
    # A bare UPDATE (no service, no signal) counts as much: here the ACS URL the Response goes to.
    SsoSettings.objects.filter(pk=connector.pk).update(acs_urls=[{"url": "https://sp.example.com/new-acs"}])
    assert auto_post(_launch(session_client, connector))[0] == "https://sp.example.com/new-acs"


def test_key_rotation_takes_effect_at_the_next_request(session_client, connector):
    active = keys.ensure_active_key()
    assert keys.certificate_base64(active.certificate_pem).encode() in _signed_with(_launch(session_client, connector))
    new = keys.signing_key_rotate(actor=None)
    assert keys.certificate_base64(new.certificate_pem).encode() in _signed_with(_launch(session_client, connector))
    own = keys.connector_signing_key_set(actor=None, connector=connector)
    assert keys.certificate_base64(own.certificate_pem).encode() in _signed_with(_launch(session_client, connector))


def test_policy_change_takes_effect_at_the_next_request(session_client, connector):
    assert _launch(session_client, connector).status_code == 200
    # Signed in 1,000 s ago: a 15-minute lifetime ends the session at once.
    sign_in_policy_update(actor=None, session_lifetime_seconds=900, session_idle_seconds=600)
    response = _launch(session_client, connector)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- Another process makes the change -------------------------------------------------------------

_CHANGES = {
    "rotate": "from apps.saml_idp import keys; keys.signing_key_rotate(actor=None)",
    "disable": (
        "from apps.connectors.models import Connector; from apps.connectors import services; "
        "services.connector_update(actor=None, connector=Connector.objects.get(slug='{slug}'), enabled=False)"
    ),
    "policy": (
        "from apps.portal.policy import sign_in_policy_update; "
        "sign_in_policy_update(actor=None, session_lifetime_seconds=900, session_idle_seconds=600)"
    ),
}


def _in_another_process(change: str, **names: str) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idp_portal.settings",
        "DATABASE_URL": _database_url_for_subprocess(),
    }
    code = "import django; django.setup(); " + _CHANGES[change].format(**names)
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


@pytest.mark.django_db(transaction=True)
def test_changes_made_by_another_process_are_seen_at_the_next_request(session_client, connector):
    active = keys.ensure_active_key()
    next_key = keys.signing_key_create_next(actor=None)
    assert keys.certificate_base64(active.certificate_pem).encode() in _signed_with(_launch(session_client, connector))
    assert not any("connectors_ssosettings" in sql for sql in _cached_statements(session_client, connector))

    _in_another_process("rotate")
    signed = _signed_with(_launch(session_client, connector))
    assert keys.certificate_base64(next_key.certificate_pem).encode() in signed

    _in_another_process("policy")
    response = _launch(session_client, connector)
    assert response.status_code == 302 and response["Location"].startswith("/login/")

    # Signed out now, the launch would send to the sign-in page again; a switched-off app refuses.
    _in_another_process("disable", slug=connector.slug)
    assert _launch(session_client, connector).status_code == 403


def test_each_caller_gets_its_own_copy(connector):
    from apps.common import generations
    from apps.saml_idp.selectors import sso_connector

    generations.request_started()
    try:
        first = sso_connector(connector.slug)
        acs_urls = list(first.sso.acs_urls)
        first.name = "Changed here"
        first.sso.acs_urls.append({"url": "https://elsewhere.example/acs"})
        with CaptureQueriesContext(connection) as captured:
            second = sso_connector(connector.slug)
        assert captured.captured_queries == []  # from the cache
        assert second.name == connector.name and second.sso.acs_urls == acs_urls
        assert second.sso.connector is second and second.signing_key_id == first.signing_key_id
    finally:
        generations.request_finished()
