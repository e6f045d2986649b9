"""The pieces under the SSO flow: ACS URL validation on save, SHA-1 settings, bounded decoding,
the replay cache, RelayState rules, and why the portal's own policy is needed on top of pysaml2."""

import base64
import datetime
import hashlib
import re
import uuid
import zlib
from urllib.parse import quote

import pytest
import redis
from django.core.exceptions import ValidationError
from django.utils import timezone
from saml2 import BINDING_HTTP_REDIRECT

from apps.connectors import services as connector_services
from apps.saml_idp import bindings, replay, server, services
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import loaded_key, signing_key_for
from apps.saml_idp.models import SeenRequestId
from tests.saml_idp.sp import deflate_and_encode, saml_instant

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "http://sp.example.com/acs",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://sp.example.com/acs",
        "file:///etc/passwd",
        "/relative/acs",
        "https://user:pw@sp.example.com/acs",
        "https://sp.example.com/a cs",
    ],
)
def test_acs_urls_are_validated_when_saved(connector, url):
    with pytest.raises(ValidationError) as caught:
        connector_services.connector_update(actor=None, connector=connector, sso={"acs_urls": [{"url": url}]})
    assert "sso.acs_urls" in caught.value.message_dict


@pytest.mark.parametrize("url", ["https://sp.example.com/acs", "http://127.0.0.1:8080/acs", "http://localhost/acs"])
def test_https_and_loopback_http_acs_urls_are_accepted(connector, url):
    connector = connector_services.connector_update(actor=None, connector=connector, sso={"acs_urls": [{"url": url}]})
    assert connector.sso.acs_urls[0]["url"] == url


def test_sha1_needs_the_explicit_override_and_warns(connector):
    with pytest.raises(ValidationError):
        connector_services.connector_update(actor=None, connector=connector, sso={"signature_algorithm": "rsa-sha1"})
    assert services.sha1_warning(connector) == ""
    connector = connector_services.connector_update(
        actor=None, connector=connector, sso={"signature_algorithm": "rsa-sha1", "allow_sha1": True}
    )
    assert "SHA1" in services.sha1_warning(connector)


def test_inflate_stops_at_the_limit_without_inflating_the_rest():
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"a" * 200_000_000) + bomb.flush()
    assert len(data) < 300_000
    with pytest.raises(SamlRequestError) as caught:
        bindings.inflate_limited(data, 100 * 1024)
    assert caught.value.reason == "too_large"
    assert bindings.inflate_limited(zlib.compress(b"x" * 10)[2:-4], 100) == b"x" * 10


def test_raw_query_refuses_duplicate_parameters():
    assert bindings.raw_query_parameters("SAMLRequest=a%2Bb&SigAlg=x") == {"SAMLRequest": "a%2Bb", "SigAlg": "x"}
    with pytest.raises(SamlRequestError):
        bindings.raw_query_parameters("SAMLRequest=a&SAMLRequest=b")


def test_auto_post_form_escapes_everything():
    html = bindings.auto_post_form('https://sp/acs?a=1&b="2"', {"RelayState": "\"><script>x</script>'"})
    assert "<script>x" not in html and "&quot;&gt;&lt;script&gt;" in html
    assert 'action="https://sp/acs?a=1&amp;b=&quot;2&quot;"' in html


def test_replay_cache_window(connector, settings):
    settings.REDIS_URL = ""  # the database keeps the ids
    assert replay.remember_once(purpose="t", scope="c", message_id="id1", ttl_seconds=3600)
    assert not replay.remember_once(purpose="t", scope="c", message_id="id1", ttl_seconds=3600)
    assert replay.remember_once(purpose="t", scope="other", message_id="id1", ttl_seconds=3600)
    SeenRequestId.objects.update(expires=timezone.now() - datetime.timedelta(seconds=1))
    assert replay.remember_once(purpose="t", scope="c", message_id="id1", ttl_seconds=3600)
    assert not replay.remember_once(purpose="t", scope="c", message_id="id1", ttl_seconds=3600)


def test_replay_cache_in_redis_is_shared_and_expires(settings):
    """With REDIS_URL set the ids live in Redis only (no database write on the sign-in path)."""
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    message_id = f"_{uuid.uuid4().hex}"
    assert replay.remember_once(purpose="t", scope="c", message_id=message_id, ttl_seconds=60)
    assert not replay.remember_once(purpose="t", scope="c", message_id=message_id, ttl_seconds=60)
    assert replay.remember_once(purpose="t", scope="other", message_id=message_id, ttl_seconds=60)
    assert not SeenRequestId.objects.exists()
    # Another process (another web worker) sees the same sighting.
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = replay._REDIS_PREFIX + hashlib.sha256(f"t\0c\0{message_id}".encode()).hexdigest()
    assert 0 < client.ttl(key) <= 60
    client.delete(key)  # as Redis does when the TTL runs out
    assert replay.remember_once(purpose="t", scope="c", message_id=message_id, ttl_seconds=60)


def test_replay_cache_falls_back_to_the_database_while_redis_is_down(settings, monkeypatch, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: refused at once
    monkeypatch.setattr(replay, "_redis_down_until", 0.0)
    message_id = f"_{uuid.uuid4().hex}"
    assert replay.remember_once(purpose="t", scope="c", message_id=message_id, ttl_seconds=60)
    assert "Redis unavailable" in caplog.text
    assert SeenRequestId.objects.count() == 1
    # Still refused while Redis stays away (the database answers without trying Redis again).
    assert not replay.remember_once(purpose="t", scope="c", message_id=message_id, ttl_seconds=60)
    assert replay._redis_down_until > 0


def test_launch_relay_state_rules(connector):
    connector = connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"relay_state_urls": ["https://sp.example.com/app/", "https://b.example/x"]},
    )
    assert services.launch_relay_state(connector, "/inbox?a=1") == "/inbox?a=1"
    assert services.launch_relay_state(connector, "https://sp.example.com/app/deep/link") == (
        "https://sp.example.com/app/deep/link"
    )
    assert services.launch_relay_state(connector, "https://b.example/x") == "https://b.example/x"
    for bad in (
        "https://b.example/xy",
        "https://sp.example.com.evil/app/",
        "//evil",
        "http:/evil",
        "/ok\n",
        "x" * 2000,
    ):
        with pytest.raises(SamlRequestError):
            services.launch_relay_state(connector, bad)


def _pysaml2_parse(connector, xml: str):
    key = loaded_key(signing_key_for(connector))
    return server.idp_server(connector, key).parse_authn_request(
        deflate_and_encode(xml.encode()), BINDING_HTTP_REDIRECT
    )


def test_pysaml2_alone_accepts_what_the_portal_refuses(connector, sp_factory, signed_in):
    """Why requests.py exists: pysaml2 parses stale and replayed requests without complaint."""
    xml, _ = sp_factory(connector).authn_request_xml()
    stale = re.sub(
        r'IssueInstant="[^"]+"', f'IssueInstant="{saml_instant(timezone.now() - datetime.timedelta(hours=2))}"', xml
    )
    assert _pysaml2_parse(connector, stale).message.id
    assert _pysaml2_parse(connector, stale).message.id  # and again: no replay cache
    url = f"{connector.sso_url}?SAMLRequest={quote(deflate_and_encode(stale.encode()))}"
    response = signed_in.get(url)
    assert response.status_code == 400


def test_post_binding_is_never_inflated(signed_in, connector, sp_factory):
    xml, _ = sp_factory(connector).authn_request_xml()
    deflated = deflate_and_encode(xml.encode())
    response = signed_in.post(connector.sso_url, {"SAMLRequest": deflated})
    assert response.status_code == 400
    assert base64.b64decode(deflated)[:1] != b"<"


def test_hot_path_reads_agree_with_the_orm(connector, user):
    """The SSO path's plain-SQL reads give the same answers as the ORM selectors they stand for."""
    from apps.connectors.models import AttributeMapping
    from apps.connectors.selectors import user_is_assigned
    from apps.directory import services as directory_services
    from apps.saml_idp import keys, selectors
    from tests.factories import GroupFactory, UserFactory

    outsider, direct, grouped = UserFactory(), UserFactory(), UserFactory()
    connector_services.assignment_create(actor=None, connector=connector, user=direct)
    other_group = GroupFactory(members=[grouped, outsider])
    connector_services.assignment_create(actor=None, connector=connector, group=other_group)
    directory_services.group_remove_members(actor=None, group=other_group, users=[outsider])
    for person in (user, outsider, direct, grouped):
        assert selectors.user_assigned(connector.pk, person.pk) == user_is_assigned(connector, person)
    assert selectors.user_assigned(connector.pk, outsider.pk) is False
    orm_rows = list(
        AttributeMapping.objects.filter(connector=connector, kind="saml").values_list("source", "target", "name_format")
    )
    assert selectors.saml_mapping_rows(connector.pk) == orm_rows
    assert selectors.user_group_names(grouped.pk) == [other_group.name]
    assert keys.signing_key_choice(connector.pk) is None  # no key yet: the caller generates one
    assert keys.loaded_key_for(connector).id == keys.signing_key_for(connector).pk
    assert keys.signing_key_choice(connector.pk) == keys.signing_key_for(connector).pk
    own = keys.connector_signing_key_set(actor=None, connector=connector)
    assert keys.signing_key_choice(connector.pk) == own.pk == keys.signing_key_for(connector).pk
    found = selectors.sso_connector(connector.slug)
    assert found == connector and found.sso.acs_urls == connector.sso.acs_urls
    assert found.sso.sp_entity_id == connector.sso.sp_entity_id and found.updated == connector.updated
    assert selectors.sso_connector("no-such-slug") is None
    scim_only = connector_services.connector_create(actor=None, template="generic-scim", name="SCIM only")
    assert selectors.sso_connector(scim_only.slug) is None
    for person in (user, outsider, direct, grouped):
        facts = selectors.sign_in_facts(connector.pk, person.pk)
        assert facts.assigned == user_is_assigned(connector, person)
        assert facts.mappings == orm_rows
        assert facts.groups == selectors.user_group_names(person.pk)


def test_sso_connector_loads_every_field_in_one_query(connector, django_assert_num_queries):
    """One statement reads the connector, its SSO settings (every column, whatever is added later)
    and the key that signs for it; the ORM reads the same values."""
    from apps.connectors.models import Connector, SsoSettings
    from apps.saml_idp import keys, selectors

    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"relay_state_urls": ["https://sp.example.com/app/"], "default_relay_state": "/home"},
    )
    portal_key = keys.ensure_active_key()
    with django_assert_num_queries(1):
        found = selectors.sso_connector(connector.slug)
        assert found.sso.connector_id == connector.pk
    orm_connector = Connector.objects.get(pk=connector.pk)
    orm_sso = SsoSettings.objects.get(connector=connector)
    for model, loaded, expected in ((Connector, found, orm_connector), (SsoSettings, found.sso, orm_sso)):
        for field in model._meta.concrete_fields:
            assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name
    assert found.signing_key_id == portal_key.pk
    keys.loaded_key_for(found)  # this process decrypts the key once
    with django_assert_num_queries(0):
        assert keys.loaded_key_for(found).id == portal_key.pk
    own = keys.connector_signing_key_set(actor=None, connector=connector)
    assert selectors.sso_connector(connector.slug).signing_key_id == own.pk
    keys.connector_signing_key_clear(actor=None, connector=connector)
    assert selectors.sso_connector(connector.slug).signing_key_id == portal_key.pk


def test_sign_in_facts_skip_groups_unless_a_mapping_sends_them(connector, user):
    from apps.saml_idp import selectors

    assert selectors.sign_in_facts(connector.pk, user.pk).groups == ["Engineering"]
    connector_services.mappings_replace(
        actor=None, connector=connector, kind="saml", rows=[{"source": "email", "target": "mail", "name_format": ""}]
    )
    facts = selectors.sign_in_facts(connector.pk, user.pk)
    assert facts == selectors.SignInFacts(assigned=True, mappings=[("email", "mail", "")], groups=None)
    connector_services.mappings_replace(actor=None, connector=connector, kind="saml", rows=[])
    assert selectors.sign_in_facts(connector.pk, user.pk) == selectors.SignInFacts(True, [], None)


def test_which_logout_requests_end_the_portal_session(connector, user):
    """services.slo_session_mismatch: NameID and SessionIndex must name this user and this session."""
    from django.contrib.auth.models import AnonymousUser

    from apps.saml_idp.requests import LogoutRequestInfo

    this_session = "_" + "a" * 40

    def mismatch(*, name_id="jane.doe@example.com", indexes=(this_session,), signed=False, who=user):
        request = LogoutRequestInfo(
            id="_r", issuer="sp", name_id=name_id, session_indexes=indexes, binding="", relay_state="", signed=signed
        )
        return services.slo_session_mismatch(connector=connector, user=who, request=request, session_index=this_session)

    assert mismatch() == ""
    assert mismatch(indexes=("_other", this_session)) == ""
    assert mismatch(who=AnonymousUser()) == "not_signed_in"
    assert mismatch(name_id="mallory@example.com") == "name_id_mismatch"
    assert mismatch(name_id="mallory@example.com", signed=True) == "name_id_mismatch"
    assert mismatch(indexes=("_other",)) == "session_index_mismatch"
    assert mismatch(indexes=("_other",), signed=True) == "session_index_mismatch"
    # Without a SessionIndex only the app's signature vouches for the request (SAML core 3.7.1).
    assert mismatch(indexes=()) == "session_index_missing"
    assert mismatch(indexes=(), signed=True) == ""
    # A transient NameID names nobody the portal can look up: the SessionIndex alone decides.
    connector_services.connector_update(actor=None, connector=connector, sso={"nameid_format": "transient"})
    connector.sso.refresh_from_db()
    assert mismatch(name_id="_random-transient-id") == ""
    assert mismatch(name_id="_random-transient-id", indexes=("_other",)) == "session_index_mismatch"
    assert mismatch(name_id="_random-transient-id", indexes=(), signed=True) == "session_index_missing"
