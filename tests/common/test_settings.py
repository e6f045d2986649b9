"""Production settings pass Django's deployment checks; development defaults need no services."""

import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "7Hq2-vR9xLm4Zp8Wc3Nd6Tf1Yb5Gs0Ju",
    "ALLOWED_HOSTS": "portal.example.com",
    "PORTAL_BASE_URL": "https://portal.example.com",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}}
    clean["DJANGO_SETTINGS_MODULE"] = "idp_portal.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy_without_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secret_key():
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_development_defaults_are_sqlite_and_a_serverless_broker():
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE']); print(settings.CELERY_BROKER_URL)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "idp_portal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_database_and_broker_urls_come_from_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE']); print(settings.CELERY_BROKER_URL)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "idp_portal.settings",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/idp_portal",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "redis://127.0.0.1:6379/3"]


def test_trusted_proxies_must_be_addresses_and_the_old_hop_count_is_refused():
    bad = _manage("check", env={**PRODUCTION_ENV, "TRUSTED_PROXIES": "10.0.0.2, proxy.internal"})
    assert bad.returncode != 0
    assert "TRUSTED_PROXIES: 'proxy.internal' is not an address or network" in bad.stderr
    # A hop count trusted whatever reached the port; an upgrade must not silently drop it.
    old = _manage("check", env={**PRODUCTION_ENV, "TRUSTED_PROXY_COUNT": "1"})
    assert old.returncode != 0
    assert "TRUSTED_PROXY_COUNT is replaced by TRUSTED_PROXIES" in old.stderr
    good = _manage("check", env={**PRODUCTION_ENV, "TRUSTED_PROXIES": "10.0.0.2,172.30.57.0/24,fd00::/8"})
    assert good.returncode == 0, good.stderr
