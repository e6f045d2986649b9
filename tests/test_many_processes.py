"""Many processes, one truth: two web processes (gunicorn) and three Celery workers on one PostgreSQL and Redis.

A change made through web process A (the admin API or the console, as an admin would) takes effect
on web process B at its very next request: a signing-key rotation, a connector's ACS URLs, the
sign-in policy. An AuthnRequest accepted by A is refused as a replay by B. A connector's outbound
rate limit holds for the three worker processes together, in every one-second window, at an app
that limits by a sliding window. Nothing here is mocked: each check is what a browser, an SP or an
app would see.
"""

import base64
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from apps.api.services import api_token_create
from apps.connectors import services as connector_services
from apps.directory import services as directory
from apps.directory.models import AdminRole
from apps.portal.services import LAST_SEEN_KEY, SIGNED_IN_AT_KEY
from tests.conftest import PROJECT_ROOT, _database_url_for_subprocess, stop_process, wait_for
from tests.factories import UserFactory
from tests.provisioning.conftest import free_port

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", autouse=True)
def _needs_postgresql_and_redis(django_db_setup, django_db_blocker) -> None:
    with django_db_blocker.unblock():
        vendor = connection.vendor
    if vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("many processes share one PostgreSQL and one Redis; this run has SQLite or no Redis")


class WebProcess:
    """gunicorn (one worker process) serving the portal on a port of its own."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = PROJECT_ROOT / "var" / f"test-web-{name}-{os.getpid()}.log"
        self.env = env
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30, follow_redirects=False)

    def start(self) -> "WebProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "idp_portal.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--threads", "4", "--timeout", "60"],
                cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                return self.http.get("/healthz", params={"only": "database"}).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=90, interval=0.2, message=f"web process {self.name} to answer")

    def stop(self) -> None:
        self.http.close()
        stop_process(self.process)


@pytest.fixture(scope="module")
def queue() -> str:
    """The Celery queue of this module's web processes and workers."""
    return f"many-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def web(_needs_postgresql_and_redis, django_db_blocker, queue) -> Iterator[tuple[WebProcess, WebProcess]]:
    with django_db_blocker.unblock():
        database_url = _database_url_for_subprocess()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idp_portal.settings.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        "DEBUG": "true",
        "CELERY_DEFAULT_QUEUE": queue,
        "OUTBOUND_ALLOW_LOOPBACK": "true",
        "PYTHONUNBUFFERED": "1",
    }
    a, b = WebProcess("a", env).start(), WebProcess("b", env).start()
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


def _path(url: str) -> str:
    """An absolute URL of the portal (PORTAL_BASE_URL) as a path, to send to either web process."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _session_cookie(user, *, signed_in_seconds_ago: int = 0) -> dict[str, str]:
    """A browser session of `user`, stored in the shared database as a sign-in would leave it."""
    client = Client()
    client.force_login(user, backend="apps.portal.backends.PortalBackend")
    session = client.session
    now = int(time.time())
    session[SIGNED_IN_AT_KEY] = now - signed_in_seconds_ago
    session[LAST_SEEN_KEY] = now
    session.save()
    return {settings.SESSION_COOKIE_NAME: session.session_key}


def _api(process: WebProcess, admin) -> httpx.Client:
    _, secret = api_token_create(actor=None, user=admin, name=f"many-{uuid.uuid4().hex[:6]}")
    return httpx.Client(
        base_url=f"http://127.0.0.1:{process.port}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


@pytest.fixture
def admin(transactional_db):
    user = UserFactory(username="many.admin", password="s3cret-Pass-99")
    directory.user_set_admin_role(actor=None, user=user, role=AdminRole.SUPER_ADMIN)
    return user


@pytest.fixture
def saml_app(transactional_db):
    """A SAML connector with a user assigned, and that user's browser session (signed in 20 minutes ago)."""
    from tests.saml_idp.conftest import make_connector

    connector = make_connector(name=f"Many {uuid.uuid4().hex[:6]}")
    user = UserFactory(username="many.user", email="many.user@example.com", password="s3cret-Pass-99")
    connector_services.assignment_create(actor=None, connector=connector, user=user)
    return connector, _session_cookie(user, signed_in_seconds_ago=20 * 60)


def _sp(process: WebProcess, connector, **kwargs):
    from tests.saml_idp.sp import OneLoginSP

    metadata = process.http.get(f"/saml/idp/{connector.slug}/metadata")
    assert metadata.status_code == 200, metadata.text[:300]
    return OneLoginSP(metadata.content, **kwargs)


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]*)">')
_SAML_RESPONSE = re.compile(r'name="SAMLResponse" value="([^"]*)"')
_CERTIFICATE = re.compile(r"<ds:X509Certificate>([^<]+)</ds:X509Certificate>")


def _as_browser(process: WebProcess, cookies: dict[str, str]) -> httpx.Client:
    """The process's client carrying exactly the cookies of one browser."""
    process.http.cookies.clear()
    process.http.cookies.update(cookies)
    return process.http


def _sso(process: WebProcess, url: str, cookies: dict[str, str]) -> httpx.Response:
    return _as_browser(process, cookies).get(_path(url))


def _signing_certificate(response: httpx.Response) -> str:
    """The certificate that signed the SAML Response in our auto-submitting form."""
    assert response.status_code == 200, response.text[:500]
    xml = base64.b64decode(_SAML_RESPONSE.search(response.text).group(1)).decode()
    return re.sub(r"\s+", "", _CERTIFICATE.search(xml).group(1))


def _pem_body(pem: str) -> str:
    return re.sub(r"\s+", "", re.sub(r"-----[A-Z ]+-----", "", pem))


def test_key_rotation_on_one_web_process_signs_on_the_other_at_once(web, admin, saml_app):
    a, b = web
    connector, cookies = saml_app
    sp = _sp(b, connector)
    before = _signing_certificate(_sso(b, sp.redirect_login()[0], cookies))

    with _api(a, admin) as api:
        rotated = api.post("/idp-keys/rotate")
    assert rotated.status_code in (200, 201), rotated.text[:500]
    new_certificate = _pem_body(rotated.json()["active"]["certificate_pem"])
    assert new_certificate != before

    assert _signing_certificate(_sso(b, sp.redirect_login()[0], cookies)) == new_certificate
    assert new_certificate in re.sub(r"\s+", "", b.http.get(f"/saml/idp/{connector.slug}/metadata").text)


def test_connector_change_on_one_web_process_applies_on_the_other_at_once(web, admin, saml_app):
    from tests.saml_idp.sp import SP_ACS_URL

    a, b = web
    connector, cookies = saml_app
    new_acs = "https://sp.example.com/saml/new-acs"
    sp = _sp(b, connector, acs_url=new_acs)
    refused = _sso(b, sp.redirect_login()[0], cookies)
    assert refused.status_code == 400 and "SAMLResponse" not in refused.text

    with _api(a, admin) as api:
        changed = api.patch(
            f"/connectors/{connector.pk}", json={"sso": {"acs_urls": [{"url": SP_ACS_URL}, {"url": new_acs}]}}
        )
    assert changed.status_code == 200, changed.text[:500]

    accepted = _sso(b, sp.redirect_login()[0], cookies)
    assert accepted.status_code == 200, accepted.text[:500]
    assert _FORM_ACTION.search(accepted.text).group(1) == new_acs


def test_policy_change_on_one_web_process_applies_on_the_other_at_once(web, admin, saml_app):
    a, b = web
    connector, cookies = saml_app
    sp = _sp(b, connector)
    assert _sso(b, sp.redirect_login()[0], cookies).status_code == 200  # 20 minutes into an 8-hour session

    # The super-admin shortens sessions to 15 minutes in A's console.
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=admin, name="Authenticator app", confirmed=True)
    console = Client()
    console.force_login(admin, backend="apps.portal.backends.PortalBackend")
    session = console.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[SIGNED_IN_AT_KEY] = session[LAST_SEEN_KEY] = int(time.time())
    session.save()
    admin_cookies = {settings.SESSION_COOKIE_NAME: session.session_key}
    page = _as_browser(a, admin_cookies).get("/console/settings/")
    assert page.status_code == 200, page.text[:300]
    fields = dict(re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*value="([^"]*)"', page.text))
    fields = {name: value for name, value in fields.items() if name != "mfa_required"}
    fields.update(session_idle_minutes="15", session_lifetime_minutes="15")
    csrf = page.cookies.get(settings.CSRF_COOKIE_NAME)
    saved = _as_browser(a, {**admin_cookies, settings.CSRF_COOKIE_NAME: csrf}).post(
        "/console/settings/", data=fields, headers={"X-CSRFToken": csrf}
    )
    assert saved.status_code == 302, saved.text[:1000]

    # B measures the 20-minute-old session against the new lifetime at its next request.
    ended = _sso(b, sp.redirect_login()[0], cookies)
    assert ended.status_code == 302 and "/login" in ended.headers["location"], ended.text[:300]


def test_authn_request_accepted_by_one_web_process_is_a_replay_on_the_other(web, saml_app):
    a, b = web
    connector, cookies = saml_app
    url, _ = _sp(a, connector).redirect_login()
    first = _sso(a, url, cookies)
    assert first.status_code == 200 and "SAMLResponse" in first.text
    replayed = _sso(b, url, cookies)
    assert replayed.status_code == 400 and "SAMLResponse" not in replayed.text, replayed.text[:300]


# --- The rate limit of one connector, across three worker processes -------------------------------


def max_in_any_window(times: list[float], width: float = 1.0) -> int:
    """The most requests that fall in any `width`-second sliding window [t, t + width)."""
    ordered, most, first = sorted(times), 0, 0
    for last, end in enumerate(ordered):
        while end - ordered[first] >= width:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_rate_limit_holds_across_three_workers_in_every_one_second_window(web, admin, queue):
    from apps.provisioning.models import OutboxEvent
    from idp_portal.celery import app
    from tests.provisioning.downstream import FaultyScimServer
    from tests.provisioning.helpers import WorkerFactory, make_connector

    limit = 5
    downstream = FaultyScimServer().start()
    downstream.limit_rate(limit, sliding=True)  # the app's own limiter: a sliding one-second window
    factory = WorkerFactory()
    factory.queue = queue
    default_queue, app.conf.task_default_queue = app.conf.task_default_queue, queue
    try:
        connector = make_connector(downstream, rate_limit=limit)
        users = [UserFactory(username=f"rate{i:02d}", email=f"rate{i:02d}@example.com") for i in range(24)]
        workers = [
            factory.start(
                beat=index == 0,
                PROVISIONING_BATCH_SIZE="2",
                PROVISIONING_TASKS_PER_CONNECTOR="3",
                PROVISIONING_TASK_BUDGET_SECONDS="2",
            )
            for index in range(3)
        ]
        # Assigned through web process A's admin API: A enqueues, the three workers deliver.
        with _api(a := web[0], admin) as api:
            for user in users:
                assert (
                    api.post(f"/connectors/{connector.pk}/assignments", json={"user": str(user.pk)}).status_code == 201
                )
        wait_for(
            lambda: (
                not OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).exists()
                and {u["userName"] for u in downstream.users} == {u.username for u in users}
            ),
            timeout=120,
            interval=0.2,
            message=f"every user to arrive (web log: {a.log_path})",
        )
        requests = downstream.calls()
        assert all(worker.process.poll() is None for worker in workers)
    finally:
        factory.stop_all()
        app.conf.task_default_queue = default_queue
        downstream.close()

    rejected = [r for r in requests if r.status == 429]
    busiest = max_in_any_window([r.received for r in requests])
    assert not rejected, f"{len(rejected)} of {len(requests)} requests answered 429"
    assert busiest <= limit, busiest
    # The three workers all sent: one keep-alive connection (at least) each.
    assert len({r.client for r in requests}) >= 3
