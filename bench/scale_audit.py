"""The audit log at ten million events: filtered pages, streamed exports, and retention pruning.

    .venv/bin/python bench/scale_audit.py                     # 10,000,000 events (1,000,000 users)
    BENCH_SCALE=0.02 .venv/bin/python bench/scale_audit.py    # 200,000 events: a quick run

The events come from bench/scale_data.py (COPY, over the last two years, into the same database
as bench/scale_reads.py; loaded once, kept between runs). A child process runs the portal
(`idp_portal.settings`, DEBUG off) against it and drives it through Django's test client, as the
other benches do, as a signed-in admin (console) and with an API token (`/api/v1/audit-events`).

Printed beside its goal with PASS/MISS:

- filtered pages (p95 of interleaved rounds): the console's audit page unfiltered, by actor (an
  admin's username), by action (one action, and a family such as `user`), by target (a user's
  name), by a day's time range, and actor with a month; the API by actor id, by target, by action
  and by a day. Goal: under 200 ms.
- exports: CSV and JSON Lines of the newest 11 % of the log (1.1 million events at full size),
  streamed and read to the end (the time to the first row is printed too); the process's resident
  memory (VmRSS) is sampled every 1 % of the rows. Goal: constant memory, the peak within 20 MB of
  the RSS once 5 % of the rows are out.
- retention: 5 % more events, older than the rest, are added (COPY) and pruned by the product's
  `audit_prune` (batches of AUDIT_PRUNE_BATCH_SIZE), while a second connection writes an audit
  event through `audit_record` every 10 ms; its write latency is compared with the same writer's
  before the prune. Goal: no write waits on the prune: the p99 during it under 3x the p99 before
  it plus 5 ms (a lock wait would last as long as a batch or the whole prune), and no write over
  1 s. The 10 million events are left as they were.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import scale_data  # noqa: E402 - siblings of the bench, found through sys.path
import scale_reads  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "20"))
PAGE_GOAL_MS = 200.0
EXPORT_RSS_GROWTH_MB = 20.0
WRITE_MAX_MS = 1000.0
EXPORT_FRACTION = 0.11
PRUNE_FRACTION = 0.05


def main() -> None:
    sizes = scale_data.scale_sizes()
    database_url = scale_data.scale_database_url(sizes)
    scale_data.ensure_database(database_url)
    data = scale_data.ensure_scale_data(
        database_url, users=sizes["users"], groups=sizes["groups"], largest_group=sizes["largest_group"]
    )
    audit = scale_data.ensure_audit_events(database_url, rows=sizes["audit_rows"])
    how = "generated" if audit.generated else "already there, checked"
    print(f"Audit log: {audit.rows:,} events over two years, {data.users:,} users ({how} in {audit.seconds:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="scale-audit-") as var_dir:
        env = scale_reads.child_env(database_url, var_dir)
        env["BENCH_AUDIT_ROWS"] = str(audit.rows)
        command = [sys.executable, str(Path(__file__).resolve()), "--child"]
        output = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    if output.returncode != 0:
        sys.stderr.write(output.stderr[-6000:])
        raise SystemExit("the measuring process failed")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    print(
        f"{scale_reads.load_average()} (after the run); {ROUNDS} rounds; baseline (one event by id): "
        f"{result['baseline_ms']:.2f} ms"
    )
    base = result["baseline_ms"]
    print(f"  {'filtered page':<44}{'median ms':>10}{'p95 ms':>9}{'x base':>8}{'rows':>6}  goal")
    for name, row in result["pages"].items():
        print(
            f"  {name:<44}{row['median']:>10.1f}{row['p95']:>9.1f}{row['median'] / base:>8.1f}{row['rows']:>6}  "
            f"p95 < {PAGE_GOAL_MS:.0f} ms: {scale_reads.verdict(row['p95'], PAGE_GOAL_MS)}"
        )
    for fmt, row in result["exports"].items():
        growth = row["peak_mb"] - row["settled_mb"]
        print(
            f"  export {fmt:<6} {row['rows']:,} rows in {row['seconds']:.0f} s ({row['rows_per_s']:,.0f} rows/s, "
            f"first after {row['first_row_s']:.1f} s), "
            f"{row['mb']:.0f} MB; RSS {row['start_mb']:.0f} MB before, {row['settled_mb']:.0f} MB after 5 % of rows, "
            f"peak {row['peak_mb']:.0f} MB, end {row['end_mb']:.0f} MB: growth {growth:.1f} MB "
            f"(goal < {EXPORT_RSS_GROWTH_MB:.0f} MB): {scale_reads.verdict(growth, EXPORT_RSS_GROWTH_MB)}"
        )
    prune = result["prune"]
    goal = 3 * prune["before"]["p99"] + 5
    print(
        f"  retention: {prune['deleted']:,} events pruned in {prune['seconds']:.1f} s "
        f"({prune['batches']} batches of {prune['batch_size']:,}; {prune['deleted'] / prune['seconds']:,.0f} rows/s)"
    )
    for phase in ("before", "during"):
        row = prune[phase]
        print(
            f"    audit writes {phase:<7} the prune: {row['writes']:>5} writes, median {row['median']:.1f} ms, "
            f"p99 {row['p99']:.1f} ms, max {row['max']:.1f} ms"
        )
    held = prune["during"]["p99"] < goal and prune["during"]["max"] < WRITE_MAX_MS
    print(
        f"    goal: p99 during the prune < {goal:.1f} ms (3x before + 5 ms), max < {WRITE_MAX_MS:.0f} ms: "
        f"{'PASS' if held else 'MISS'}"
    )


# --- Child: measure ---------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _stats(samples: list[float]) -> dict:
    ordered = sorted(samples) or [0.0]

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000

    return {"writes": len(samples), "median": at(0.5), "p99": at(0.99), "max": ordered[-1] * 1000}


class AuditChild(scale_reads.Child):
    def measure(self) -> dict:
        admin = self._admin()
        console = self.console_client(admin)
        api = self.api_headers(admin)
        result = {"baseline_ms": 0.0, "pages": self.pages(console, api), "exports": {}, "prune": {}}
        result["baseline_ms"] = self.baseline_ms
        for fmt in ("csv", "jsonl"):
            result["exports"][fmt] = self.export(console, fmt)
        result["prune"] = self.prune()
        return result

    def pages(self, console, api) -> dict:
        from django.test import Client

        from apps.audit.models import AuditEvent

        api_client = Client()  # no session: the API by its token alone
        users = self._marker()["users"]
        today = datetime.now(UTC).date()
        day = (today - timedelta(days=200)).isoformat()
        month_start = (today - timedelta(days=60)).isoformat()
        month_end = (today - timedelta(days=30)).isoformat()
        admin_index = 3
        probes = {
            "console, no filter": ("/console/audit/", dict),
            "console, actor (an admin's username)": (
                "/console/audit/",
                lambda: {"actor": scale_data.username(admin_index)},
            ),
            "console, action": ("/console/audit/", lambda: {"action": "user.suspend"}),
            "console, action family (user)": ("/console/audit/", lambda: {"action": "user"}),
            "console, target (a user's name)": (
                "/console/audit/",
                lambda: {"target": scale_data.username(self.chooser.randrange(users))},
            ),
            "console, one day": ("/console/audit/", lambda: {"since": day, "until": day}),
            "console, actor and a month": (
                "/console/audit/",
                lambda: {"actor": scale_data.username(admin_index), "since": month_start, "until": month_end},
            ),
            "api, actor id": ("/api/v1/audit-events", lambda: {"actor": scale_data.user_id(admin_index)}),
            "api, target": (
                "/api/v1/audit-events",
                lambda: {
                    "target_type": "directory.user",
                    "target_id": scale_data.user_id(self.chooser.randrange(users)),
                },
            ),
            "api, action": ("/api/v1/audit-events", lambda: {"action": "portal.lockout"}),
            "api, one day": (
                "/api/v1/audit-events",
                lambda: {"since": f"{day}T00:00:00Z", "until": f"{day}T23:59:59Z"},
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in probes}
        rows: dict[str, int] = {}
        baseline: list[float] = []
        newest = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
        for _ in range(ROUNDS):
            started = time.perf_counter()
            AuditEvent.objects.filter(pk=newest - self.chooser.randrange(1000)).first()
            baseline.append(time.perf_counter() - started)
            for name, (url, query) in probes.items():
                client, headers = (api_client, api) if url.startswith("/api") else (console, {})
                started = time.perf_counter()
                response = client.get(url, query(), **headers)
                samples[name].append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{name} answered {response.status_code}: {response.content[:300]!r}")
                if name not in rows:
                    rows[name] = (
                        len(response.json()["results"])
                        if url.startswith("/api")
                        else response.content.count(b"<time datetime=")
                    )
        self.baseline_ms = statistics.median(baseline) * 1000
        return {
            name: {
                "median": statistics.median(values) * 1000,
                "p95": sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))] * 1000,
                "rows": rows[name],
            }
            for name, values in samples.items()
        }

    def export(self, console, fmt: str) -> dict:
        audit_rows = int(os.environ["BENCH_AUDIT_ROWS"])
        days = int(2 * 365 * EXPORT_FRACTION) + 1
        since = (datetime.now(UTC).date() - timedelta(days=days)).isoformat()
        url = "/console/audit/export.csv" if fmt == "csv" else "/console/audit/export.jsonl"
        start_mb = _rss_mb()
        started = time.perf_counter()
        response = console.get(url, {"since": since})
        expected = audit_rows * EXPORT_FRACTION
        every = max(1000, int(expected // 100))
        lines = size = 0
        settled_mb, peak_mb, next_sample, first_row_s = None, start_mb, every, None
        for chunk in response.streaming_content:
            if first_row_s is None:
                first_row_s = time.perf_counter() - started
            lines += chunk.count(b"\n")
            size += len(chunk)
            if lines >= next_sample:
                next_sample += every
                current = _rss_mb()
                # What the export holds once it runs (its first 5 % of rows): buffers, a chunk of rows.
                if settled_mb is None and lines >= expected * 0.05:
                    settled_mb = current
                peak_mb = max(peak_mb, current)
        seconds = time.perf_counter() - started
        rows = lines - (1 if fmt == "csv" else 0)
        if rows < min(1_000_000, audit_rows * EXPORT_FRACTION * 0.9):
            raise SystemExit(f"the {fmt} export had {rows} rows only")
        return {
            "rows": rows, "seconds": seconds, "first_row_s": first_row_s, "rows_per_s": rows / seconds,
            "mb": size / 1e6, "start_mb": start_mb,
            "settled_mb": settled_mb or peak_mb, "peak_mb": peak_mb, "end_mb": _rss_mb(),
        }  # fmt: skip

    def prune(self) -> dict:
        from django.conf import settings
        from django.db import connection, connections, transaction

        from apps.audit.retention import audit_prune
        from apps.audit.services import audit_record

        extra = max(1000, int(int(os.environ["BENCH_AUDIT_ROWS"]) * PRUNE_FRACTION))
        now = datetime.now(UTC)
        # Older than every generated event (two years): exactly these go at a retention of 900 days.
        old = now - timedelta(days=1000)
        stamp = scale_data.timestamp
        # created, actor_id, actor_label, action, target_type, target_id, target_label, before, after, request_id, ip
        lines = (
            f"{stamp(old + timedelta(seconds=n))}\t\\N\tsystem\tbench.old\t\t\told {n}\t\\N\t\\N\t\t\\N\n"
            for n in range(extra)
        )
        raw = connection.connection  # the psycopg connection Django holds
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY audit_auditevent ({', '.join(scale_data.AUDIT_COLUMNS)}) FROM STDIN") as copy,
        ):
            for line in lines:
                copy.write(line)
        if not connection.get_autocommit():
            raw.commit()
        stop = threading.Event()
        latencies: dict[str, list[float]] = {"before": [], "during": []}
        phase = {"name": "before"}

        def writer() -> None:
            try:
                while not stop.is_set():
                    started = time.perf_counter()
                    with transaction.atomic():
                        audit_record(actor=None, action="bench.write", target_label="concurrent writer")
                    latencies[phase["name"]].append(time.perf_counter() - started)
                    time.sleep(0.01)
            finally:
                connections.close_all()

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(10)
        phase["name"] = "during"
        started = time.perf_counter()
        result = audit_prune(days=900, budget_seconds=3600, now=now)
        seconds = time.perf_counter() - started
        stop.set()
        thread.join()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditevent")  # what autovacuum would do after a prune
        return {
            "deleted": result.deleted, "batches": result.batches, "batch_size": settings.AUDIT_PRUNE_BATCH_SIZE,
            "seconds": seconds, "before": _stats(latencies["before"]), "during": _stats(latencies["during"]),
        }  # fmt: skip


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(AuditChild().measure()))
    else:
        main()
