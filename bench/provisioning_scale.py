"""Outbound provisioning at a million users: the initial sync against a bare-client floor, worker
memory, task length, a worker SIGKILLed halfway, the console's progress, a 100,000-member group.

    .venv/bin/python bench/provisioning_scale.py                       # 1,000,000 users (the issue's size)
    BENCH_SCALE_USERS=20000 .venv/bin/python bench/provisioning_scale.py   # a quick run

The directory comes from bench/scale_data.py (COPY, idempotent: loaded once per size) into a
database of this benchmark's own (BENCH_SYNC_DATABASE_URL); `users / 100` groups, of which a tenth
are departments that split the users and are assigned to the connector, the largest with
`users / 10` members. Each run empties the provisioning tables and starts a private redis-server,
the SCIM app of bench/provisioning_scale_downstream.py (a process of its own, counting what
reaches it per user and per group) and two `celery worker --concurrency=1` processes.

Phases (see bench/README.md): the floor (one plain httpx loop sends the engine's requests to a fresh
app), the engine's initial sync (timed from the commit of `connector_sync`), the same sync again with
one worker SIGKILLed halfway and replaced, and a change of one member of the largest group.
It prints and never asserts: a missed goal is reported as MISS.
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
for _path in (str(PROJECT_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from provisioning import LIMIT_LINE, TASK_LINE  # noqa: E402
from provisioning_stack import AutoAnalyze, PrivateRedis, Worker, children_of, free_port, rss_kib, wait_until  # noqa: E402
from scale_data import ensure_database, ensure_scale_data  # noqa: E402

# A batch that looked up before creating (run.app_may_hold_unlinked_users), as a worker logs it: the
# app had users no link names ("the app has"), or other workers' creates kept the count waiting.
LOOKUP_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ .*(the app has|other creates kept running).*looking up before creating",
    re.M,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/idp_bench_sync"
ROWS: list[tuple[str, str, str, str]] = []  # (figure, value, goal, PASS/MISS/"")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def row(figure: str, value: str, goal: str = "", ok: bool | None = None) -> None:
    ROWS.append((figure, value, goal, "" if ok is None else ("PASS" if ok else "MISS")))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- The SCIM app ---------------------------------------------------------------------------------


class Downstream:
    """bench/provisioning_scale_downstream.py in a process of its own."""

    def __init__(self, workdir: Path, label: str) -> None:
        self.token, self.port = f"bench-{uuid.uuid4().hex}", free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        log_file = (workdir / f"downstream-{label}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "provisioning_scale_downstream.py"), str(self.port), self.token],
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._ready, timeout=20, what="the SCIM app to listen")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/_stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/_stats", timeout=60).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --- Setup ----------------------------------------------------------------------------------------


def setup(args: argparse.Namespace, workdir: Path) -> tuple[dict, PrivateRedis]:
    ensure_database(args.database_url)
    ensure_scale_data(args.database_url, users=args.users, groups=args.groups, largest_group=args.largest, log=log)
    redis = PrivateRedis(workdir).start()
    import psycopg

    with psycopg.connect(args.database_url, autocommit=True) as conn:
        autovacuum = conn.execute("SHOW autovacuum").fetchone()[0]
    if autovacuum != "on":
        # Statistics decide the plans of the console's counts: do what a default server would do.
        args.autoanalyze = AutoAnalyze(args.database_url, 60).start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "idp_portal.settings",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": redis.url,
        "CELERY_DEFAULT_QUEUE": f"bench-scale-{os.getpid()}",
        "DEBUG": "false",
        "SECRET_KEY": f"bench-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "OUTBOUND_ALLOW_LOOPBACK": "true",
        "IDP_VAR_DIR": str(workdir / "var"),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    import django

    django.setup()
    return env, redis


def reset_provisioning(connector, downstream: Downstream) -> None:
    """No link, event or delivery left from an earlier run; the connector points at `downstream`."""
    from django.db import connection

    from apps.connectors.services import connector_update
    from apps.provisioning.models import Delivery, DeprovisionHold, FullSyncRecording, OutboxEvent, RemoteObject

    with connection.cursor() as cursor:
        for model in (OutboxEvent, RemoteObject, Delivery, DeprovisionHold, FullSyncRecording):
            cursor.execute(f'TRUNCATE "{model._meta.db_table}"')
    settings = {"enabled": True, "base_url": downstream.base_url, "token": downstream.token, "rate_limit_per_second": 0}
    connector_update(actor=None, connector=connector, enabled=True, provisioning=settings)
    connector.refresh_from_db()
    connector.provisioning.refresh_from_db()


# --- The floor ------------------------------------------------------------------------------------


def floor(connector, downstream: Downstream, chunk: int) -> dict:
    """The engine's requests to an empty app from one httpx loop: per 100 users a count, a POST per
    user it creates; per assigned group a lookup by displayName, a POST with the first `chunk`
    members and PATCHes of `chunk` more. Bodies are built by the planner, untimed."""
    from apps.connectors.models import Assignment
    from apps.connectors.selectors import users_in_scope
    from apps.directory.models import Group, Membership
    from apps.provisioning import mapping, planner
    from apps.provisioning.run import plan_settings

    settings = plan_settings(connector)
    client = httpx.Client(base_url=downstream.base_url, headers={"Authorization": f"Bearer {downstream.token}"},
                          timeout=60)  # fmt: skip
    remote_ids: dict[str, str] = {}
    sending = requests = sent_users = 0
    ids = list(users_in_scope(connector).order_by().values_list("pk", flat=True))
    for start in range(0, len(ids), 2000):
        part = ids[start : start + 2000]
        names: dict = {}
        for user_id, name in Membership.objects.filter(user_id__in=part).values_list("user_id", "group__name"):
            names.setdefault(user_id, []).append(name)
        bodies = []
        for user in connector_users(part):
            plan = planner.plan_user(user, None, settings, in_scope=True, group_names=names.get(user.pk, []))
            if plan.request is not None:
                bodies.append((str(user.pk), plan.request.body))
        began = time.perf_counter()
        for index, (user_id, body) in enumerate(bodies):
            if (sent_users + index) % 100 == 0:
                client.get("/Users", params={"startIndex": 1, "count": 1})
                requests += 1
            remote_ids[user_id] = client.post("/Users", json=body).json()["id"]
            requests += 1
        sent_users += len(bodies)
        sending += time.perf_counter() - began
    group_ids = Assignment.objects.filter(connector=connector, group__isnull=False).values_list("group_id", flat=True)
    for group in Group.objects.filter(pk__in=list(group_ids)):
        members = sorted(str(m) for m in Membership.objects.filter(group=group).values_list("user_id", flat=True))
        members = [remote_ids[m] for m in members if m in remote_ids]
        resource = mapping.build_group_resource(mapping.group_properties(group), settings.group_mappings, [])
        began = time.perf_counter()
        client.get("/Groups", params={"filter": f'displayName eq "{group.name}"'})
        created = client.post("/Groups", json={**resource, "members": [{"value": v} for v in members[:chunk]]})
        requests += 2
        for at in range(chunk, len(members), chunk):
            operations = mapping.member_operations(members[at : at + chunk], [])
            client.patch(f"/Groups/{created.json()['id']}", json=mapping.patch_request(operations))
            requests += 1
        sending += time.perf_counter() - began
    client.close()
    return {"seconds": sending, "requests": requests, "users": sent_users}


def connector_users(ids: list):
    from apps.directory.models import User

    by_id = User.objects.in_bulk(ids)
    return [by_id[pk] for pk in ids if pk in by_id]


# --- The engine's sync ----------------------------------------------------------------------------


class Workers:
    def __init__(self, workdir: Path, env: dict, count: int) -> None:
        self.workdir, self.env, self.next_index = workdir, env, 0
        self.workers: list[Worker] = []
        for _ in range(count):
            self.add()
        wait_until(lambda: all(worker.ready() for worker in self.workers), timeout=120, what="the workers")

    def add(self) -> Worker:
        worker = Worker(self.workdir, self.env, self.next_index).start()
        self.next_index += 1
        self.workers.append(worker)
        return worker

    def processes(self) -> dict[str, int]:
        """Every live worker process (main and pool child) by a stable name."""
        found = {}
        for worker in self.workers:
            if worker.alive():
                found[f"{worker.log_path.stem} main"] = worker.pid
                for child in children_of(worker.pid):
                    found[f"{worker.log_path.stem} pool"] = child
        return found

    def kill(self, worker: Worker) -> None:
        for pid in [*children_of(worker.pid), worker.pid]:
            os.kill(pid, signal.SIGKILL)
        worker.process.wait()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def lookup_batches(self) -> dict[str, list[float]]:
        """When each batch that looked up before creating began (epoch seconds, from the logs), by why."""
        found: dict[str, list[float]] = {"the app has": [], "other creates kept running": []}
        for worker in self.workers:
            for match in LOOKUP_LINE.finditer(worker.log_text()):
                stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
                found[match.group(2)].append(stamp)
        return {why: sorted(stamps) for why, stamps in found.items()}

    def task_stats(self) -> tuple[list[float], int]:
        durations, limits = [], 0
        for worker in self.workers:
            text = worker.log_text()
            durations += [float(match.group(3)) for match in TASK_LINE.finditer(text)]
            limits += len(LIMIT_LINE.findall(text))
        return durations, limits


def progress_now(connector) -> tuple[dict, float]:
    """What the console's Provisioning tab computes (its selectors), and how long that took."""
    from apps.provisioning.selectors import provisioning_state, sync_progress

    began = time.perf_counter()
    state = provisioning_state(connector)
    progress = sync_progress(connector, state)
    return {"state": state, "progress": progress}, (time.perf_counter() - began) * 1000


def directory_change_ms(connector) -> float:
    """How long an admin's change to one user in scope takes (its transaction records the user's
    event, which locks the user's link): a full sync's recording must not hold it for long."""
    from django.db import transaction

    from apps.connectors.selectors import users_in_scope
    from apps.directory.services import user_update

    user = users_in_scope(connector).order_by("?").first()
    began = time.perf_counter()
    with transaction.atomic():
        user_update(actor=None, user=user, title=f"Title {uuid.uuid4().hex[:6]}")
    return (time.perf_counter() - began) * 1000


def engine_sync(connector, workers: Workers, expected: int, *, kill_at: float | None, timeout: float) -> dict:
    from django.db import transaction

    from apps.provisioning import claims
    from apps.provisioning.models import FullSyncRecording
    from apps.provisioning.services import connector_sync

    marks: dict[str, float] = {}
    began = time.perf_counter()
    with transaction.atomic():
        transaction.on_commit(lambda: marks.setdefault("commit", time.perf_counter()))
        connector_sync(actor=None, connector=connector)
    log(f"  connector_sync committed its first chunk in {marks['commit'] - began:.1f} s")
    recording = FullSyncRecording.objects.filter(connector=connector)
    rss: dict[str, list[tuple[float, int]]] = {}
    console_ms: list[float] = []
    change_ms = [directory_change_ms(connector)]  # and more while the sync is being recorded
    shown: list[str] = []
    next_sample, killed, last_done, last_move = 0.1, None, -1, time.perf_counter()
    while True:
        view, ms = progress_now(connector)
        console_ms.append(ms)
        progress = view["progress"]
        done = progress.done if progress.total else 0
        fraction = done / expected
        now = time.perf_counter()
        if "recorded" not in marks and recording.exists():
            change_ms.append(directory_change_ms(connector))
        elif "recorded" not in marks:
            marks["recorded"] = now
            log(f"  the rest of the sync recorded by the workers {now - marks['commit']:.1f} s after the commit")
        if fraction >= next_sample:
            for name, pid in workers.processes().items():
                rss.setdefault(name, []).append((fraction, rss_kib(pid)))
            shown.append(progress.summary)
            log(f"  {progress.summary} (console query {ms:.0f} ms)")
            next_sample += 0.1
        if kill_at is not None and killed is None and fraction >= kill_at:
            victim = workers.workers[0]
            workers.kill(victim)
            killed = {"at": now, "wall": time.time(), "fraction": fraction, "worker": victim.log_path.stem}
            workers.add()  # what the supervisor does
            log(f"  SIGKILLed {victim.log_path.stem} at {fraction:.0%}; a new worker started")
        if not view["state"].waiting and done >= expected:
            break
        if done != last_done:
            last_done, last_move = done, now
        elif now - last_move > 30:
            claims.sweep()  # what beat does every PROVISIONING_SWEEP_SECONDS (no beat runs here)
            last_move = now
        if now - marks["commit"] > timeout:
            log("  timed out")
            break
        time.sleep(2.0)  # as the console's Provisioning tab polls
    return {"seconds": time.perf_counter() - marks["commit"], "rss": rss, "console_ms": console_ms,
            "killed": killed, "shown": shown, "done": done, "recording": marks["commit"] - began,
            "recorded": marks.get("recorded", time.perf_counter()) - marks["commit"],
            "change_ms": change_ms}  # fmt: skip


def rss_drift(rss: dict[str, list[tuple[float, int]]]) -> dict[str, tuple[float, int, int]]:
    """Per process: the largest change from its first sample (after 10 % synced), in percent."""
    drift = {}
    for name, samples in rss.items():
        if len(samples) < 2:
            continue
        first = samples[0][1]
        worst = max(samples, key=lambda sample: abs(sample[1] - first))[1]
        drift[name] = ((worst - first) / first * 100, first, worst)
    return drift


# --- One member of the largest group --------------------------------------------------------------


def one_member_change(connector, downstream: Downstream, workers: Workers) -> dict:
    """Add a user of another department to the largest one, then remove it: the group's requests."""
    from django.db.models import Count

    from apps.connectors.models import Assignment
    from apps.directory import services as directory
    from apps.directory.models import Group, Membership, User
    from apps.provisioning.models import OutboxEvent

    assigned = Assignment.objects.filter(connector=connector, group__isnull=False).values("group_id")
    largest = Group.objects.filter(pk__in=assigned).annotate(n=Count("memberships")).order_by("-n").first()
    outsider = User.objects.filter(status="active").exclude(memberships__group=largest).order_by("username").first()
    results = {"group": largest.name, "members": largest.n}

    def settled() -> bool:
        return not OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).exists()

    for step, change in (("add", directory.group_add_members), ("remove", directory.group_remove_members)):
        before = downstream.stats()["groups"][largest.name]
        began = time.perf_counter()
        change(actor=None, group=largest, users=[outsider])
        wait_until(settled, timeout=120, what=f"the {step} to be sent", interval=0.1)
        after = downstream.stats()["groups"][largest.name]
        results[step] = {
            "seconds": time.perf_counter() - began,
            "patches": after["patches"] - before["patches"],
            "members_after": after["members"],
        }
    results["members_in_directory"] = Membership.objects.filter(group=largest).count()
    return results


# --- Run and report -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=int(os.environ.get("BENCH_SCALE_USERS", 1_000_000)))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_SYNC_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction synced when a worker is SIGKILLed")
    parser.add_argument("--no-resume", action="store_true", help="skip the second sync with a worker killed")
    parser.add_argument("--keep", action="store_true", help="keep the worker and app logs")
    args = parser.parse_args()
    # A tenth of the groups are departments that split the users: at least 10 of them.
    args.groups, args.largest = max(args.users // 100, 100), max(args.users // 10, 10)
    return args


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-scale-"))
    log(f"provisioning_scale: {args.users:,} users, {args.groups:,} groups (largest {args.largest:,}), "
        f"{args.workers} workers; load average {load_average()}")  # fmt: skip
    env, redis = setup(args, workdir)
    from apps.connectors.models import Connector

    connector = Connector.objects.select_related("provisioning").get(slug="scale-app")
    chunk = connector.provisioning.group_members_per_request
    stopping: list = [redis] + ([args.autoanalyze] if getattr(args, "autoanalyze", None) else [])
    try:
        base = Downstream(workdir, "floor")
        stopping.append(base)
        reset_provisioning(connector, base)
        log("floor: one httpx loop")
        floor_result = floor(connector, base, chunk)
        log(f"  {floor_result['requests']:,} requests in {floor_result['seconds']:.1f} s")
        base.stop()
        stopping.remove(base)
        expected = users_and_groups(connector)
        report_sync_phase(args, env, workdir, connector, expected, floor_result, chunk, stopping)
    finally:
        for process in stopping:
            process.stop()
        if args.keep:
            print(f"Kept the worker and app logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(args)
    return 0


def users_and_groups(connector) -> int:
    from apps.connectors.models import Assignment
    from apps.connectors.selectors import users_in_scope

    groups = Assignment.objects.filter(connector=connector, group__isnull=False).count()
    return users_in_scope(connector).order_by().count() + groups


def report_sync_phase(args, env, workdir, connector, expected, floor_result, chunk, stopping) -> None:
    engine_app = Downstream(workdir, "engine")
    stopping.append(engine_app)
    reset_provisioning(connector, engine_app)
    workers = Workers(workdir, env, args.workers)
    stopping.append(workers)
    log(f"engine: initial sync of {expected:,} objects")
    sync = engine_sync(connector, workers, expected, kill_at=None, timeout=max(600, args.users * 0.05))
    stats = engine_app.stats()
    durations, limits = workers.task_stats()
    ratio = sync["seconds"] / floor_result["seconds"]
    row("Initial sync, engine / floor", f"{sync['seconds']:.1f} s / {floor_result['seconds']:.1f} s = {ratio:.2f}x",
        "<= 1.2x", ratio <= 1.2)  # fmt: skip
    row("Objects settled / expected", f"{sync['done']:,} / {expected:,}", "all", sync["done"] >= expected)
    row("Requests: engine / floor", f"{sum(stats['requests'].values()):,} / {floor_result['requests']:,}")
    row("Sync now: its first chunk in the admin's request / the rest by the workers",
        f"{sync['recording']:.1f} s / {sync['recorded']:.1f} s")  # fmt: skip
    changes = sync["change_ms"]
    row("A user changed while Sync now is recorded, max (its link is locked by the recording)",
        f"{max(changes):.0f} ms over {len(changes)} changes", "< 1000 ms",
        max(changes) < 1000)  # fmt: skip
    row("Longest task", f"{max(durations, default=0):.1f} s of {len(durations):,} tasks; {limits} time-limit errors",
        "< 60 s", max(durations, default=0) < 60 and not limits)  # fmt: skip
    drift = rss_drift(sync["rss"])
    worst = max((abs(value[0]) for value in drift.values()), default=0.0)
    detail = "; ".join(f"{name} {first / 1024:.0f}->{last / 1024:.0f} MiB ({pct:+.1f} %)"
                       for name, (pct, first, last) in sorted(drift.items()))  # fmt: skip
    row("Worker memory, 10 % synced to the end (each process)", detail or "no samples", "within ±10 %", worst <= 10)
    console = sync["console_ms"]
    row("Console progress (provisioning_state + sync_progress), median / max",
        f"{statistics.median(console):.0f} / {max(console):.0f} ms over {len(console)} polls", "< 150 ms median",
        statistics.median(console) < 150)  # fmt: skip
    row("Progress shown mid-sync", sync["shown"][len(sync["shown"]) // 2] if sync["shown"] else "none")
    row("Users created more than once", str(stats["users_created_more_than_once"]), "0",
        stats["users_created_more_than_once"] == 0)  # fmt: skip
    group_rows(stats, chunk)
    change = one_member_change(connector, engine_app, workers)
    for step, done in (("add", "added to"), ("remove", "removed from")):
        figure = f"One member {done} {change['group']} ({change['members']:,} members): group PATCHes"
        value = f"{change[step]['patches']} in {change[step]['seconds']:.2f} s"
        row(figure, value, "1", change[step]["patches"] == 1)
    workers.stop()
    stopping.remove(workers)
    engine_app.stop()
    stopping.remove(engine_app)
    if not args.no_resume:
        resume_phase(args, env, workdir, connector, expected, stopping)


def group_rows(stats: dict, chunk: int) -> None:
    groups = stats["groups"]
    largest_name = max(groups, key=lambda name: groups[name]["members"])
    largest = groups[largest_name]
    expected_patches = -(-largest["members"] // chunk) - 1
    row(f"Largest group {largest_name}: members in the app", f"{largest['members']:,}")
    row(f"{largest_name}: PATCHes after the POST / largest request",
        f"{largest['patches']} / {largest['largest_request']:,} members", f"{expected_patches} / <= {chunk:,}",
        largest["patches"] <= expected_patches + 1 and largest["largest_request"] <= chunk)  # fmt: skip
    resent = sum(group["resent_members"] for group in groups.values())
    row("Group members sent more than once (all groups)", f"{resent:,}", "0", resent == 0)


def resume_phase(args, env, workdir, connector, expected, stopping) -> None:
    app = Downstream(workdir, "resume")
    stopping.append(app)
    reset_provisioning(connector, app)
    workers = Workers(workdir, env, args.workers)
    stopping.append(workers)
    log(f"resume: the same sync, a worker SIGKILLed at {args.kill_at:.0%}")
    sync = engine_sync(connector, workers, expected, kill_at=args.kill_at, timeout=max(900, args.users * 0.08))
    stats = app.stats()
    killed = sync["killed"] or {}
    row("Sync with a worker SIGKILLed halfway and replaced",
        f"{sync['seconds']:.1f} s, killed at {killed.get('fraction', 0):.0%}; {sync['done']:,} / {expected:,} settled",
        "all settled", sync["done"] >= expected)  # fmt: skip
    row("  users created more than once after the kill", str(stats["users_created_more_than_once"]), "0",
        stats["users_created_more_than_once"] == 0)  # fmt: skip
    lookups = stats["requests"].get("GET /Users", 0)
    row("  user POSTs / lookups and counts (GET /Users)", f"{stats['requests'].get('POST /Users', 0):,} / {lookups:,}")
    # The killed worker's creates that were not linked yet make every batch look up first until
    # their leases expire and another worker links them: when did the last such batch begin?
    for why, stamps in workers.lookup_batches().items():
        last = f"the last {stamps[-1] - killed['wall']:.0f} s after the kill" if stamps and killed else "none"
        row(f"  batches that looked up before creating: {why}", f"{len(stamps):,}; {last} (leases last 120 s)")
    resent = sum(group["resent_members"] for group in stats["groups"].values())
    row("  group members sent more than once", f"{resent:,}", "0", resent == 0)
    workers.stop()
    stopping.remove(workers)
    app.stop()
    stopping.remove(app)


def print_report(args: argparse.Namespace) -> None:
    print(f"\nprovisioning_scale: {args.users:,} users, {args.workers} workers, load average {load_average()}")
    width = max(len(figure) for figure, *_ in ROWS) if ROWS else 10
    for figure, value, goal, result in ROWS:
        print(f"{figure:<{width}}  {value}" + (f"  [goal {goal}]" if goal else "") + (f"  {result}" if result else ""))


if __name__ == "__main__":
    sys.exit(main())
