"""Processes for bench/provisioning.py: a private Redis, scim2-server downstreams, Celery workers.

Every process here is started by the benchmark, on loopback, and stopped by its own pid.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Managed:
    """A subprocess with a log file, stopped with SIGTERM (then SIGKILL) by its own pid."""

    name = "process"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def _spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class PrivateRedis(Managed):
    """redis-server on a free loopback port, without persistence; the shared Redis is never touched."""

    name = "redis"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / "redis.log")
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        self._spawn(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--daemonize", "no"],
        )  # fmt: skip
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def ready() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(ready, timeout=10, what="the private redis-server")
        client.close()
        return self


class ScimServer(Managed):
    """scim2-server (HTTP/1.0, a new connection per request) holding its resources in memory."""

    name = "scim2-server"

    def __init__(self, workdir: Path, label: str) -> None:
        super().__init__(workdir / f"scim2-server-{label}.log")
        self.token = f"bench-{uuid.uuid4().hex}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def start(self) -> "ScimServer":
        self._spawn([str(VENV_BIN / "scim2-server"), "--bearer-token", self.token, "--port", str(self.port)])

        def ready() -> bool:
            try:
                return self.http.get("/ServiceProviderConfig").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=20, what="scim2-server to listen")
        return self

    def total(self, resource_type: str) -> int:
        response = self.http.get(f"/{resource_type}", params={"count": 1})
        response.raise_for_status()
        return int(response.json().get("totalResults") or 0)

    def all(self, resource_type: str) -> list[dict]:
        resources: list[dict] = []
        start = 1
        while True:
            response = self.http.get(f"/{resource_type}", params={"startIndex": start, "count": 1000})
            response.raise_for_status()
            page = response.json()
            batch = page.get("Resources") or []
            resources.extend(batch)
            start += len(batch)
            if not batch or start > int(page.get("totalResults") or 0):
                return resources

    def stop(self, timeout: float = 20) -> None:
        super().stop(timeout)
        self.http.close()


class Worker(Managed):
    """`celery -A idp_portal worker --concurrency=1` (prefork: a main process and one pool child)."""

    name = "celery worker"

    def __init__(self, workdir: Path, env: dict[str, str], index: int) -> None:
        super().__init__(workdir / f"worker-{index}.log")
        self.env = env
        self.hostname = f"bench{index}-{uuid.uuid4().hex[:6]}@%h"

    def start(self) -> "Worker":
        self._spawn(
            [sys.executable, "-m", "celery", "-A", "idp_portal", "worker", "--loglevel=INFO", "--concurrency=1",
             "--pool=prefork", f"--hostname={self.hostname}", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            env=self.env,
        )  # fmt: skip
        return self

    def ready(self) -> bool:
        return "ready." in self.log_text()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def rss_kib(self) -> tuple[int, int]:
        """(main process, pool children) resident memory in KiB."""
        if not self.alive():
            return 0, 0
        return rss_kib(self.pid), sum(rss_kib(child) for child in children_of(self.pid))


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def children_of(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command may hold spaces and parentheses: the fields after the last ")" are fixed.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry))
    return children


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuTracker:
    """CPU seconds used by groups of processes over an interval, short-lived ones included.

    Celery closes its database connection around every task, so PostgreSQL backends come and go:
    each pid is sampled on every `sample()` call and counted from when it was first seen.
    """

    def __init__(self, groups) -> None:
        self.groups = groups  # callable -> {group name: [pids]}
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.group_of: dict[int, str] = {}
        self.system_start = _system_ticks()
        self.sample(initial=True)

    def sample(self, initial: bool = False) -> None:
        for name, pids in self.groups().items():
            for pid in pids:
                used = cpu_seconds(pid)
                if pid not in self.first:
                    self.first[pid] = used if initial else 0.0
                    self.group_of[pid] = name
                self.last[pid] = max(self.last.get(pid, 0.0), used)

    def totals(self) -> dict[str, float]:
        self.sample()
        totals: dict[str, float] = {}
        for pid, name in self.group_of.items():
            totals[name] = totals.get(name, 0.0) + self.last[pid] - self.first[pid]
        return totals

    def system_busy(self) -> float:
        """Share of all CPUs busy since the tracker started (every process on the machine)."""
        busy0, total0 = self.system_start
        busy1, total1 = _system_ticks()
        return (busy1 - busy0) / max(1, total1 - total0)

    def summary(self) -> str:
        """CPU seconds by group, and what the rest of the machine used meanwhile."""
        totals = self.totals()
        busy = (_system_ticks()[0] - self.system_start[0]) / os.sysconf("SC_CLK_TCK")
        parts = [f"{name} {seconds:.1f}" for name, seconds in totals.items() if seconds >= 0.05]
        parts.append(f"other processes {max(0.0, busy - sum(totals.values())):.1f}")
        return f"{', '.join(parts)} (machine {self.system_busy():.0%} busy)"


def _system_ticks() -> tuple[int, int]:
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def processes_named(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


class AutoAnalyze:
    """What PostgreSQL's autovacuum daemon does for statistics, for servers that run with it off.

    Every `naptime` seconds, ANALYZE the tables with more than 50 + 10% changed rows since their last
    analyze (the defaults of autovacuum_analyze_threshold and autovacuum_analyze_scale_factor).
    """

    def __init__(self, database_url: str, naptime: float) -> None:
        import threading

        self.database_url = database_url
        self.naptime = naptime
        self.runs: list[tuple[str, list[str]]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="autoanalyze", daemon=True)
        self.started = time.perf_counter()

    def start(self) -> "AutoAnalyze":
        if self.naptime > 0:
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    def _loop(self) -> None:
        import psycopg

        while not self.stopping.wait(self.naptime):
            try:
                with psycopg.connect(self.database_url, autocommit=True) as conn:
                    rows = conn.execute(
                        "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                        "WHERE s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0)"
                    ).fetchall()
                    names = [row[0] for row in rows]
                    for name in names:
                        conn.execute(f'ANALYZE "{name}"')
                    if names:
                        self.runs.append((time.strftime("%H:%M:%S"), names))
            except Exception:  # noqa: BLE001, S112 - the database may be going away at the end of the run
                continue
