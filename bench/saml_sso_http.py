"""The HTTP half of bench/saml_sso.py: `wrk` (installed here when missing) against gunicorn started
from the project's own gunicorn.conf.py, as the image runs it. A helper: does nothing when run.
"""

import os
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_wrk() -> str:
    """The path of `wrk`, installed with apt-get when it is missing and this runs as root (as the
    Makefile's bench-deps target does); otherwise "" and the reason is printed."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is not installed: installing it with apt-get (Debian package wrk)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        found = shutil.which("wrk")
        if found:
            return found
        print("MISSING: apt-get could not install wrk; the HTTP figures need it", flush=True)
        return ""
    print(
        "MISSING: wrk (the load generator) is not installed and this is not root: run `sudo make bench-deps` "
        "or `sudo apt-get install wrk`; the HTTP figures need it",
        flush=True,
    )
    return ""


_WRK_SCRIPT = """
local paths = {}
local index = 0
non200 = 0
local threads = {}
local headers = {["Cookie"] = os.getenv("BENCH_COOKIE"), ["Sec-Fetch-Site"] = os.getenv("BENCH_FETCH_SITE")}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  local n = 0
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if n % tonumber(os.getenv("BENCH_THREADS")) == tid then paths[#paths + 1] = line end
    n = n + 1
  end
end
function request()
  index = index + 1
  return wrk.format("GET", paths[((index - 1) % #paths) + 1], headers)
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "SAMLResponse", 1, true) then non200 = non200 + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non200") end
  io.write(string.format("BENCH requests=%d duration_us=%d bad=%d p50_ms=%.2f p99_ms=%.2f\\n",
    summary.requests, summary.duration, bad, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, from /proc (Linux)."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    pids.extend(int(child) for child in children)
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _database_server_pids() -> list[int]:
    """PostgreSQL backends serving the benchmark database (their CPU is part of each response)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def database_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def _machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (from /proc/stat, Linux)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _start_gunicorn(port: int, env: dict, workdir: Path) -> subprocess.Popen:
    """gunicorn as the image starts it (the Dockerfile's CMD: the config file's workers and threads),
    with the access log in a file instead of stdout."""
    log = (workdir / "gunicorn.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "idp_portal.wsgi:application", "--config", "gunicorn.conf.py",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--access-logfile", str(workdir / "access.log"),
        ],
        cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def gunicorn_shape() -> str:
    """Workers x threads that gunicorn.conf.py sets (read the way gunicorn reads it)."""
    from gunicorn.config import Config

    config = Config()
    namespace: dict = {"__file__": str(ROOT / "gunicorn.conf.py")}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)  # noqa: S102
    for name in ("workers", "threads", "worker_class"):
        if name in namespace:
            config.set(name, namespace[name])
    return f"{config.workers} {config.worker_class_str} workers x {config.threads} threads"


def measure_http(
    flows: list[tuple[str, Callable[[], list[str]], dict[str, str]]],
    *,
    metadata_path: str,
    cookie: str,
    env: dict,
    port: int,
    workdir: Path,
    seconds: int,
) -> dict:
    """Each flow (label, its request paths, extra headers) for `seconds` with 2 wrk threads over
    8 connections, after a warm-up with the first flow; figures per flow, or {"error": ...}."""
    wrk = ensure_wrk()
    if not wrk:
        return {"error": "MISSING: wrk is not installed (see above)"}
    from django.db import connections

    connections.close_all()
    gunicorn = _start_gunicorn(port, env, workdir)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}{metadata_path}", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        results = {}
        threads = 2
        warm_up = (f"warm-up ({flows[0][0]})", flows[0][1], flows[0][2])
        for index, (label, paths_for, headers) in enumerate([warm_up, *flows]):
            paths_file = workdir / "paths.txt"
            paths_file.write_text("\n".join(paths_for()) + "\n")
            script = workdir / "sso.lua"
            script.write_text(_WRK_SCRIPT)
            database_pids = _database_server_pids()
            database_cpu_before = database_cpu_seconds(database_pids)
            server_cpu_before = cpu_seconds(gunicorn.pid)
            client_cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            machine_before, bench_before = _machine_busy_seconds(), time.process_time()
            duration = 3 if index == 0 else seconds
            completed = subprocess.run(
                [wrk, f"-t{threads}", "-c8", f"-d{duration}s", "--timeout", "5s", "-s", str(script), base],
                env={**os.environ, "BENCH_PATHS": str(paths_file), "BENCH_THREADS": str(threads),
                     "BENCH_COOKIE": f"sessionid={cookie}", "BENCH_FETCH_SITE": headers.get("Sec-Fetch-Site", "")},
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            machine_busy = _machine_busy_seconds() - machine_before
            bench_cpu = time.process_time() - bench_before
            server_cpu = cpu_seconds(gunicorn.pid) - server_cpu_before
            database_cpu = database_cpu_seconds(database_pids) - database_cpu_before
            client_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            client_cpu = (client_usage.ru_utime + client_usage.ru_stime) - (
                client_cpu_before.ru_utime + client_cpu_before.ru_stime
            )
            if index == 0:
                continue
            line = next((row for row in completed.stdout.splitlines() if row.startswith("BENCH ")), "")
            if not line:
                results[label] = {"error": completed.stdout + completed.stderr}
                continue
            fields = dict(part.split("=") for part in line.split()[1:])
            requests = int(fields["requests"])
            elapsed = int(fields["duration_us"]) / 1e6
            results[label] = {
                "rps": requests / elapsed,
                "requests": requests,
                "bad": int(fields["bad"]),
                "p50_ms": float(fields["p50_ms"]),
                "p99_ms": float(fields["p99_ms"]),
                "server_cpu_ms": 1000 * server_cpu / max(requests, 1),
                "client_cpu_ms": 1000 * client_cpu / max(requests, 1),
                "database_cpu_ms": 1000 * database_cpu / max(requests, 1),
                # Cores' worth of CPU that processes other than this run's took meanwhile.
                "others_cores": max(0.0, machine_busy - server_cpu - database_cpu - client_cpu - bench_cpu) / elapsed,
            }
        return results
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)
