"""The caches of rarely changed settings: every write to a watched table replaces the token in its
own transaction (database triggers), and a cached value is used only under the token a request
read (apps.common.generations)."""

import pytest
from django.db import connection, transaction

from apps.common import generations
from apps.common.models import CacheGeneration
from apps.connectors.models import SsoSettings
from apps.portal.policy import POLICY_GENERATION, sign_in_policy_update
from apps.saml_idp.selectors import SSO_CONNECTOR_GENERATION
from tests.saml_idp.conftest import make_connector

pytestmark = pytest.mark.django_db


def _token(name: str) -> str:
    return CacheGeneration.objects.get(name=name).token


@pytest.fixture
def in_request():
    generations.request_started()
    yield
    generations.request_finished()


def test_every_watched_table_has_its_trigger():
    watched = generations.watched()
    assert watched[POLICY_GENERATION] == {"portal_signinpolicy"}
    assert watched[SSO_CONNECTOR_GENERATION] == {
        "connectors_connector",
        "connectors_ssosettings",
        "saml_idp_signingkey",
        "saml_idp_connectorsigningkey",
    }
    for name, tables in watched.items():
        assert generations.tables_with_triggers(name) == tables
        assert CacheGeneration.objects.filter(name=name).exists()


def test_ensure_triggers_is_idempotent():
    generations.ensure_triggers()
    generations.ensure_triggers()
    for name, tables in generations.watched().items():
        assert generations.tables_with_triggers(name) == tables


def test_every_kind_of_write_replaces_the_token():
    connector = make_connector()
    before = _token(SSO_CONNECTOR_GENERATION)
    # A queryset update (no save(), no signal) ...
    SsoSettings.objects.filter(pk=connector.pk).update(sp_login_url="https://sp.example.com/login")
    after_update = _token(SSO_CONNECTOR_GENERATION)
    assert after_update != before
    # ... raw SQL ...
    with connection.cursor() as cursor:
        cursor.execute("UPDATE connectors_connector SET description = %s", ["changed by hand"])
    after_sql = _token(SSO_CONNECTOR_GENERATION)
    assert after_sql != after_update
    # ... and a delete.
    connector.delete()
    assert _token(SSO_CONNECTOR_GENERATION) != after_sql
    # Other caches keep theirs; reading changes nothing.
    policy_token = _token(POLICY_GENERATION)
    list(SsoSettings.objects.all())
    assert _token(POLICY_GENERATION) == policy_token


def test_a_rolled_back_change_never_brings_an_old_token_back():
    before = _token(POLICY_GENERATION)
    seen = set()
    for _ in range(3):
        try:
            with transaction.atomic():
                sign_in_policy_update(actor=None, mfa_required=True)
                seen.add(_token(POLICY_GENERATION))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert _token(POLICY_GENERATION) == before
    # Random tokens: three rolled-back changes made three different ones, none the current one.
    assert len(seen) == 3 and before not in seen


def test_cached_value_lives_until_a_watched_table_changes(in_request):
    loads = []

    def load():
        loads.append(1)
        return len(loads)

    assert generations.cached(POLICY_GENERATION, "k", load) == 1
    assert generations.cached(POLICY_GENERATION, "k", load) == 1
    # The next request (tokens read again) still uses it: nothing changed.
    generations.request_started()
    assert generations.cached(POLICY_GENERATION, "k", load) == 1
    sign_in_policy_update(actor=None, session_idle_seconds=900)
    # This request read its tokens before the change (forget_tokens makes it read them again) ...
    generations.forget_tokens()
    assert generations.cached(POLICY_GENERATION, "k", load) == 2
    # ... and the next one finds the value cached under the new token.
    generations.request_started()
    assert generations.cached(POLICY_GENERATION, "k", load) == 2
    assert len(loads) == 2


def test_nothing_is_cached_outside_a_request_or_when_switched_off(settings):
    calls = []
    for _ in range(2):
        generations.cached(POLICY_GENERATION, "k", lambda: calls.append(1))
    assert len(calls) == 2
    generations.request_started()
    try:
        settings.SETTINGS_CACHE = False
        for _ in range(2):
            generations.cached(POLICY_GENERATION, "k", lambda: calls.append(1))
        assert len(calls) == 4
    finally:
        generations.request_finished()


def test_without_its_generation_row_nothing_is_cached(in_request):
    # A flushed database (TransactionTestCase) has no rows until the next migrate: read every time.
    CacheGeneration.objects.filter(name=POLICY_GENERATION).delete()
    calls = []
    for _ in range(2):
        generations.cached(POLICY_GENERATION, "k", lambda: calls.append(1))
    assert len(calls) == 2
