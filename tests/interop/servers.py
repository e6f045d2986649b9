"""Real server processes for the interoperability matrix: portal instances (gunicorn, each on its
own database) and small threaded WSGI servers for the python SPs."""

import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from wsgiref.simple_server import WSGIServer, make_server

import httpx
from django.db import connection

from tests.conftest import PROJECT_ROOT, stop_process, wait_for
from tests.saml_sp.upstream import _QuietHandler, _ThreadingWSGIServer

LOG_DIR = PROJECT_ROOT / "var" / "interop"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class WsgiServer:
    """A WSGI app on a loopback port, in a daemon thread of the test process."""

    def __init__(self, app, host: str = "127.0.0.1") -> None:
        self.server: WSGIServer = make_server(
            host, 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.base = f"http://{host}:{self.server.server_port}"

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_BOOTSTRAP = """
import django
django.setup()
from apps.api.services import api_token_create
from apps.directory.models import User
admin = User.objects.create(
    username="interop.admin", email="interop.admin@example.com", is_staff=True, is_superuser=True
)
print(api_token_create(actor=None, user=admin, name="interop")[1])
"""


class PortalInstance:
    """The portal served by gunicorn on `host`, on a database of its own, migrated from scratch."""

    def __init__(self, name: str, host: str) -> None:
        self.name = name
        self.host = host
        self.port = free_port()
        self.base = f"http://{host}:{self.port}"
        self.log_path = LOG_DIR / f"{name}-{os.getpid()}.log"
        self.database_url, self._drop = _own_database(name)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "idp_portal.settings.test",
            "DATABASE_URL": self.database_url,
            "PORTAL_BASE_URL": self.base,
            "ALLOWED_HOSTS": host,
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None
        self.api: httpx.Client | None = None

    def migrate(self) -> subprocess.Popen:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def start(self) -> None:
        """Serve, and open an admin API client with a bearer token of a super-admin."""
        token = subprocess.run(
            [sys.executable, "-c", _BOOTSTRAP], cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True
        )
        assert token.returncode == 0, token.stderr[-2000:]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "idp_portal.wsgi:application", "--bind", f"{self.host}:{self.port}",
                "--workers", "1", "--threads", "8", "--timeout", "60", "--access-logfile", "-",
            ],
            cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(
            lambda: self.process.poll() is not None or http_ok(f"{self.base}/healthz?only=database"),
            timeout=30,
            message=f"the {self.name} portal to answer",
        )
        assert self.process.poll() is None, self.log_tail()
        self.api = httpx.Client(
            base_url=f"{self.base}/api/v1", headers={"Authorization": f"Bearer {token.stdout.strip()}"}, timeout=30
        )

    def manage(self, *arguments: str) -> subprocess.CompletedProcess:
        """A management command run against this instance, as an operator would on its host."""
        return subprocess.run(
            [sys.executable, "manage.py", *arguments], cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True
        )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.api is not None:
            self.api.close()
        stop_process(self.process)
        self._drop()


def _own_database(name: str):
    """(DATABASE_URL, drop) of a new empty database beside the test database."""
    settings_dict = connection.settings_dict
    suffix = f"interop_{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    if connection.vendor == "sqlite":
        path = PROJECT_ROOT / "var" / f"{suffix}.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}", lambda: [
            Path(f"{path}{tail}").unlink(missing_ok=True) for tail in ("", "-wal", "-shm")
        ]
    import psycopg

    user = settings_dict.get("USER") or "postgres"
    password = settings_dict.get("PASSWORD") or ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    database = f"{settings_dict['NAME']}_{suffix}"[:63]
    admin = {"user": user, "password": password or None, "host": host, "port": port, "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{database}"')

    def drop() -> None:
        with psycopg.connect(**admin, autocommit=True) as server:
            server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    auth = f"{user}:{password}@" if password else f"{user}@"
    return f"postgres://{auth}{host}:{port}/{database}", drop
