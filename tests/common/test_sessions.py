"""The session engine: Django's database sessions, loaded with one plain statement."""

import datetime

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.common.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_it_is_the_configured_engine():
    assert settings.SESSION_ENGINE == "apps.common.sessions"


def test_loads_what_django_saved_in_one_statement():
    saved = DjangoSessionStore()
    saved["answer"] = {"n": 42, "who": "jane"}
    saved.save()
    store = SessionStore(saved.session_key)
    with CaptureQueriesContext(connection) as captured:
        assert store["answer"] == {"n": 42, "who": "jane"}
    assert len(captured.captured_queries) == 1
    assert store.session_key == saved.session_key


def test_expired_deleted_unknown_and_tampered_sessions_load_empty():
    expired = SessionStore()
    expired["x"] = 1
    expired.save()
    Session.objects.filter(session_key=expired.session_key).update(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )
    reloaded = SessionStore(expired.session_key)
    assert reloaded.load() == {}
    assert reloaded.session_key is None  # a new key is issued, never the old one reused

    deleted = SessionStore()
    deleted["x"] = 1
    deleted.save()
    SessionStore(deleted.session_key).delete()
    assert SessionStore(deleted.session_key).load() == {}

    assert SessionStore("no-such-session-key-0123456789").load() == {}
    assert SessionStore(None).load() == {}

    tampered = SessionStore()
    tampered["is_staff"] = False
    tampered.save()
    Session.objects.filter(session_key=tampered.session_key).update(session_data="e30:forged:signature")
    assert SessionStore(tampered.session_key).load() == {}


def test_a_signed_in_session_survives_a_request_and_ends_on_sign_out(client):
    from tests.factories import UserFactory

    user = UserFactory()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert SessionStore(key).get("_auth_user_id") == str(user.pk)
    SessionStore(key).delete()  # what "sign out everywhere" does for each session
    assert SessionStore(key).load() == {}
