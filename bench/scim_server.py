"""Inbound SCIM server at 100,000 users, against stock django-scim2 over Django's default User.

    .venv/bin/python bench/scim_server.py                 # 100,000 users, PostgreSQL and SQLite
    .venv/bin/python bench/scim_server.py --users 10000   # smaller
    .venv/bin/python bench/scim_server.py --only sqlite   # one backend

For each backend it builds two datasets of the same shape (users, 50 groups, one or two groups per
user), bulk-inserted with one precomputed unusable password (no hashing): one for idp-portal's
server (`idp_portal.settings`, migrated) and one for stock django-scim2 (bench/scim_stock_settings.py).
PostgreSQL gets dedicated databases (idp_portal_bench, idp_portal_bench_stock: dropped and created by
this script); SQLite gets temporary files. Each side runs in its own subprocess and is driven
in-process through Django's test client, so the figures are the server's own cost, without network.

Printed per backend: `filter=userName eq "..."` (median, p95); the profile filters `title eq`,
`department eq`, `manager.value eq` and `phoneNumbers.value eq` (ours only: stock has no profile),
each against the same 5 ms goal; a page of 100 users (median over
pages at the start, middle and end, with its query count), a PATCH of one attribute, a POST, and
the stock figures with ratios (stock / ours). It prints and never asserts: a missed goal is MISS.

Stock is measured twice in the same process: as django-scim2 ships, where its default check
(`request.user.is_authenticated`) admits a client that Django's auth middleware has signed in (here
by a session, read on every request), and with a client that sends no session and is let in all
the same (bench/scim_stock_adapters.py), which no deployment can run but which shows the cost of
stock's bare request handling. The goals are judged against the first; both ratios are printed.

For the writes it also prints the CPU time the serving process spent (the rest of the wall time is
waiting on the database, its commit above all) and the statements each side sends for one PATCH and
one POST. The two sides do not do the same work: ours authenticates a bearer token, writes an audit
row and asks whether a provisioning connector must hear of the change, in one transaction; stock
django-scim2 reads its session and user (or, unauthenticated, nothing) and only saves the row.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
GROUPS = 50

GOALS = {"filter_median_ms": 5.0, "page_median_ms": 40.0}
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MANAGERS = 1000
TITLES = 200
DEPARTMENTS = 100
# The profile filters, each with a value matching a handful of the users (a lookup, as an HR
# system's or a rule's), and the same goal as userName eq.
PROFILE_FILTERS = ("title eq", "department eq", "manager.value eq", "phoneNumbers.value eq")


# --- Parent: orchestrates subprocesses and prints -----------------------------------------------


def _pg_recreate(name: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def _pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Child:
    def __init__(self, side: str, database_url: str, users: int) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(BENCH_DIR)])}
        if side == "ours":
            env.update(DJANGO_SETTINGS_MODULE="idp_portal.settings", DATABASE_URL=database_url, DEBUG="false")
            env.update(SECRET_KEY="bench-only-not-secret", SECURE_SSL_REDIRECT="false", ALLOWED_HOSTS="127.0.0.1")
            env.update(SCIM_RATE_LIMIT_PER_MINUTE="0", LOG_LEVEL="ERROR")
            env.pop("REDIS_URL", None)
        else:
            env.update(DJANGO_SETTINGS_MODULE="scim_stock_settings", BENCH_DATABASE_URL=database_url, LOG_LEVEL="ERROR")
        command = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--users", str(users)]
        self.side = side
        self.process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.side} side stopped (its error is above)")
        return json.loads(line)

    def wait_ready(self) -> None:
        self._read()

    def call(self, op: str, *args):
        self.process.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


# Measured sides: (name, process, client). Stock's two clients share its process and database.
SIDES = (("ours", "ours", "bearer"), ("stock", "stock", "session"), ("stock_open", "stock", "open"))


def _run_backend(urls: dict[str, str], users: int) -> dict[str, dict]:
    """Both processes load at once, then every measurement alternates between the sides, so that
    whatever else the machine is doing weighs on all alike."""
    children = {process: _Child(process, url, users) for process, url in urls.items()}
    try:
        for child in children.values():
            child.wait_ready()
        samples: dict[str, dict[str, list]] = {
            side: {"filter": [], "page": [], "queries": [], "patch": [], "post": [], "patch_cpu": [], "post_cpu": []}
            for side, _, _ in SIDES
        }
        profile_samples: dict[str, list[float]] = {name: [] for name in PROFILE_FILTERS}
        pages = [1, users // 2 + 1, max(1, users - 99)]
        for round_index in range(6):
            for side, process, client in SIDES:
                child = children[process]
                samples[side]["filter"] += child.call("filter", 10, client)
                if side == "ours":
                    for name, timings in child.call("profile_filters", 10, client).items():
                        profile_samples[name] += timings
                for write in ("patch", "post"):
                    timings = child.call(write, 6, client)
                    samples[side][write] += timings["wall"]
                    samples[side][f"{write}_cpu"] += timings["cpu"]
                if side == "ours" or round_index < 1:
                    for start in pages:
                        elapsed, queries = child.call("page", start, client)
                        samples[side]["page"].append(elapsed)
                        samples[side]["queries"].append(queries)
        results = {}
        for side, process, client in SIDES:
            child = children[process]
            data = samples[side]
            filter_median, filter_p95 = _ms(data["filter"])
            results[side] = {
                **child.call("info"),
                "filter_median_ms": filter_median,
                "filter_p95_ms": filter_p95,
                "page_median_ms": _ms(data["page"])[0],
                "page_max_ms": max(data["page"]) * 1000,
                "page_queries": data["queries"][0],
                "page_queries_all": sorted(set(data["queries"])),
                "patch_median_ms": _ms(data["patch"])[0],
                "post_median_ms": _ms(data["post"])[0],
                "patch_cpu_ms": _ms(data["patch_cpu"])[0],
                "post_cpu_ms": _ms(data["post_cpu"])[0],
                "statements": child.call("statements", client),
            }
        results["ours"]["profile_filters"] = {name: _ms(timings) for name, timings in profile_samples.items()}
        return results
    finally:
        for child in children.values():
            child.close()


def _fmt(value: float) -> str:
    return f"{value:8.2f}"


def _report(backend: str, ours: dict, stock: dict, stock_open: dict, users: int) -> None:
    print(f"\n{backend}, {users:,} users (times in ms; ratio = stock / ours, above 1 means ours is faster)")
    print(f"  setup: ours {ours['setup_s']:.0f} s, stock {stock['setup_s']:.0f} s")
    print("  stock: as shipped, its default check admitting a signed-in client (a session);")
    print("  stock, no auth: the same with the check off (no deployment runs this; shown for its bare cost)")
    rows = [
        ("filter=userName eq, median", "filter_median_ms"),
        ("filter=userName eq, p95", "filter_p95_ms"),
        ("page of 100 users, median", "page_median_ms"),
        ("page of 100 users, worst page", "page_max_ms"),
        ("PATCH one attribute, median", "patch_median_ms"),
        ("  of which CPU in the server", "patch_cpu_ms"),
        ("POST a user, median", "post_median_ms"),
        ("  of which CPU in the server", "post_cpu_ms"),
    ]
    print(f"  {'operation':34} {'ours':>8} {'stock':>8} {'ratio':>8} {'no auth':>8} {'ratio':>8}")
    for label, key in rows:
        ratio = stock[key] / ours[key] if ours[key] else float("inf")
        open_ratio = stock_open[key] / ours[key] if ours[key] else float("inf")
        verdict = ""
        if key in GOALS:
            verdict = "  ok" if ours[key] < GOALS[key] else f"  MISS (goal < {GOALS[key]:g} ms)"
        if ratio < 1 and not key.endswith("_cpu_ms"):
            verdict += "  MISS (slower than stock)"
        print(
            f"  {label:34} {_fmt(ours[key])} {_fmt(stock[key])} {ratio:8.2f} {_fmt(stock_open[key])} {open_ratio:8.2f}"
            f"{verdict}"
        )
    goal = GOALS["filter_median_ms"]
    for name, (median, p95) in ours["profile_filters"].items():
        verdict = "PASS" if median < goal else "MISS"
        label = f"filter={name}, median (p95 {p95:.2f})"
        print(f"  {label:44} {_fmt(median)}  {verdict} (goal < {goal:g} ms; ours only)")
    for write in ("patch", "post"):
        for side, result in (("ours", ours), ("stock", stock), ("no auth", stock_open)):
            labels = result["statements"][write]
            print(f"  statements for one {write.upper():5} {side:7} {len(labels):2}: {', '.join(labels)}")
    print(
        "  (stock writes no audit row and asks no provisioning connector: the work of our extra statements;"
        " ours sends the change, its audit row and the provisioning check in one round trip)"
    )
    print(
        f"  queries for a page of 100: ours {ours['page_queries']} (the same on every page: "
        f"{ours['page_queries_all']}), stock {stock['page_queries']}"
    )
    if ours.get("plan"):
        print(f"  ours, plan of LOWER(username) = '...': {ours['plan']}")
    if stock.get("plan"):
        print(f"  stock, plan of its filter SQL: {stock['plan']}")
    for name, plan in ours.get("profile_plans", {}).items():
        print(f"  ours, plan of filter={name}: {plan}")
    print(
        f"  discovery: ours totalResults on /ResourceTypes and /Schemas: {ours['discovery_total_results']}; "
        f"stock: {stock['discovery_total_results']}"
    )


def _load() -> str:
    """The machine's 1-minute load average and its CPU count: figures taken on a busy machine say so."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    parser.add_argument("--side", choices=["ours", "stock"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        Side(args.side, args.users).serve()
        return
    started = time.monotonic()
    load_at_start = _load()
    backends = [args.only] if args.only else ["postgresql", "sqlite"]
    for backend in backends:
        if backend == "postgresql":
            try:
                urls = {
                    side: _pg_recreate(f"idp_portal_bench{'' if side == 'ours' else '_stock'}")
                    for side in ("ours", "stock")
                }
            except Exception as exc:  # noqa: BLE001 - report and go on with SQLite
                print(f"\npostgresql: skipped ({exc.__class__.__name__}: {exc})")
                continue
            try:
                results = _run_backend(urls, args.users)
            finally:
                for side in urls:
                    _pg_drop(f"idp_portal_bench{'' if side == 'ours' else '_stock'}")
        else:
            with tempfile.TemporaryDirectory(prefix="scim-bench-") as folder:
                urls = {side: f"sqlite:///{Path(folder) / f'{side}.sqlite3'}" for side in ("ours", "stock")}
                results = _run_backend(urls, args.users)
        _report(backend, results["ours"], results["stock"], results["stock_open"], args.users)
    print(f"\ntotal {time.monotonic() - started:.0f} s; load average now {_load()} (at the start {load_at_start})")


# --- Child: one side on one database -----------------------------------------------------------


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered) * 1000, p95 * 1000


def _statement_label(sql: str) -> str:
    """`UPDATE directory_user`, `BEGIN`: the verb and the table Django names in quotes."""
    verb = sql.split(None, 1)[0].upper()
    table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', sql, re.IGNORECASE)
    return f"{verb} {table.group(1)}" if table and verb in ("SELECT", "INSERT", "UPDATE", "DELETE") else verb


def _timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _load_ours(count: int) -> str:
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command

    from apps.directory.models import Group, Membership, User
    from apps.scim_server.services import scim_token_create

    call_command("migrate", verbosity=0)
    unusable = make_password(None)
    groups = Group.objects.bulk_create([Group(name=f"group-{index:02d}") for index in range(GROUPS)])
    batch = 5000
    ids = []  # every user's id, by index: user i reports to user i // 5
    for offset in range(0, count, batch):
        users = []
        for index in range(offset, min(count, offset + batch)):
            user = User(
                username=f"user{index:06d}",
                email=f"user{index:06d}@example.com",
                first_name=f"First{index}",
                last_name=f"Last{index}",
                display_name=f"First{index} Last{index}",
                employee_id=f"E{index:06d}",
                password=unusable,
                **_profile(index, count),
            )
            user.manager_id = ids[index // 5] if index else None
            ids.append(user.pk)
            users.append(user)
        User.objects.bulk_create(users)
        memberships = []
        for position, user in enumerate(users):
            memberships.append(Membership(group=groups[(offset + position) % GROUPS], user=user))
            if position % 2:
                memberships.append(Membership(group=groups[(offset + position + 7) % GROUPS], user=user))
        Membership.objects.bulk_create(memberships)
    _, secret = scim_token_create(actor=None, name="bench")
    return secret


def _profile(index: int, count: int) -> dict:
    """Profile values for user `index`: titles shared by about 5 users, departments by about 10,
    one phone number each (and each manager has 5 reports)."""
    return {
        "title": f"Title {index % max(1, count // 5)}",
        "department": f"Department {index % max(1, count // 10)}",
        "phone_numbers": [{"value": f"+1 555 {index:07d}", "type": "work", "primary": True}],
    }


def _load_stock(count: int) -> None:
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    unusable = make_password(None)
    groups = Group.objects.bulk_create([Group(name=f"group-{index:02d}") for index in range(GROUPS)])
    through = User.groups.through
    batch = 5000
    for offset in range(0, count, batch):
        users = User.objects.bulk_create(
            [
                User(
                    username=f"user{index:06d}",
                    email=f"user{index:06d}@example.com",
                    first_name=f"First{index}",
                    last_name=f"Last{index}",
                    password=unusable,
                )
                for index in range(offset, min(count, offset + batch))
            ]
        )
        if users[0].pk is None:  # backends that do not return ids from bulk inserts
            users = list(User.objects.filter(username__in=[user.username for user in users]).order_by("id"))
        rows = []
        for position, user in enumerate(users):
            rows.append(through(group_id=groups[(offset + position) % GROUPS].pk, user_id=user.pk))
            if position % 2:
                rows.append(through(group_id=groups[(offset + position + 7) % GROUPS].pk, user_id=user.pk))
        through.objects.bulk_create(rows)


class Side:
    """One side (ours or stock) on one database, driven by commands on stdin, one JSON line each."""

    def __init__(self, side: str, count: int) -> None:
        import django

        django.setup()
        from django.db import connection
        from django.test import Client

        self.side, self.count, self.connection = side, count, connection
        started = time.monotonic()
        if side == "ours":
            secret = _load_ours(count)
            self.clients = {"bearer": Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_HOST="127.0.0.1")}
        else:
            from django.contrib.auth.models import User

            _load_stock(count)
            signed_in = Client(HTTP_HOST="127.0.0.1")
            signed_in.force_login(User.objects.create_user("scim-client", password="bench-only"))
            self.clients = {"session": signed_in, "open": Client(HTTP_HOST="127.0.0.1")}
        self.client = next(iter(self.clients.values()))
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
        self.setup_s = time.monotonic() - started
        self.rng = random.Random(7)
        self.patched = 0
        self.posted = 0
        for client in self.clients.values():
            client.get("/scim/v2/Users", {"count": "1"})  # warm up: URLconf, imports, connection
        self.ids = [r["id"] for r in self.client.get("/scim/v2/Users", {"count": "200"}).json()["Resources"]]
        if side == "ours":
            from apps.directory.models import User

            managers = User.objects.filter(manager__isnull=False).values_list("manager_id", flat=True)
            self.manager_ids = [str(pk) for pk in managers.order_by("manager_id").distinct()[:1000]]

    def use(self, client: str) -> None:
        self.client = self.clients[client]

    def filter(self, n: int) -> list[float]:
        samples = []
        for _ in range(n):
            name = f"USER{self.rng.randrange(self.count):06d}"
            elapsed, response = _timed(
                lambda name=name: self.client.get("/scim/v2/Users", {"filter": f'userName eq "{name}"'})
            )
            assert response.status_code == 200 and response.json()["totalResults"] == 1, response.content[:300]
            samples.append(elapsed)
        return samples

    def profile_filters(self, n: int) -> dict[str, list[float]]:
        """Each profile filter `n` times, with values that match (ours only)."""
        enterprise = ENTERPRISE
        samples: dict[str, list[float]] = {name: [] for name in PROFILE_FILTERS}
        for _ in range(n):
            index = self.rng.randrange(self.count)
            manager_id = self.manager_ids[self.rng.randrange(len(self.manager_ids))]
            texts = {
                "title eq": f'title eq "TITLE {index % max(1, self.count // 5)}"',
                "department eq": f'{enterprise}:department eq "department {index % max(1, self.count // 10)}"',
                "manager.value eq": f'{enterprise}:manager.value eq "{manager_id}"',
                "phoneNumbers.value eq": f'phoneNumbers.value eq "+1 555 {index:07d}"',
            }
            for name, text in texts.items():
                elapsed, response = _timed(lambda text=text: self.client.get("/scim/v2/Users", {"filter": text}))
                assert response.status_code == 200 and response.json()["totalResults"] >= 1, response.content[:300]
                samples[name].append(elapsed)
        return samples

    def page(self, start: int) -> list[float]:
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(self.connection) as captured:
            elapsed, response = _timed(
                lambda: self.client.get("/scim/v2/Users", {"startIndex": str(start), "count": "100"})
            )
        assert response.status_code == 200 and len(response.json()["Resources"]) == 100, response.content[:300]
        return [elapsed, len(captured.captured_queries)]

    def patch(self, n: int) -> dict[str, list[float]]:
        samples, cpu = [], []
        for _ in range(n):
            user_id = self.ids[self.patched % len(self.ids)]
            self.patched += 1
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "name.givenName", "value": f"Patched{self.patched}"}],
            }
            started_cpu = time.process_time()
            elapsed, response = _timed(
                lambda user_id=user_id, body=body: self.client.patch(
                    f"/scim/v2/Users/{user_id}", json.dumps(body), content_type="application/scim+json"
                )
            )
            cpu.append(time.process_time() - started_cpu)
            assert response.status_code == 200, response.content[:300]
            samples.append(elapsed)
        return {"wall": samples, "cpu": cpu}

    def post(self, n: int) -> dict[str, list[float]]:
        samples, cpu = [], []
        for _ in range(n):
            self.posted += 1
            name = f"posted{self.posted:04d}"
            body = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name,
                "name": {"givenName": "Posted", "familyName": name},
                "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
                "active": True,
            }
            started_cpu = time.process_time()
            elapsed, response = _timed(
                lambda body=body: self.client.post(
                    "/scim/v2/Users", json.dumps(body), content_type="application/scim+json"
                )
            )
            cpu.append(time.process_time() - started_cpu)
            assert response.status_code == 201, response.content[:300]
            samples.append(elapsed)
        return {"wall": samples, "cpu": cpu}

    def statements(self) -> dict[str, list[str]]:
        """The statements of one PATCH and one POST, as `VERB table`."""
        from django.test.utils import CaptureQueriesContext

        labels = {}
        for write in ("patch", "post"):
            with CaptureQueriesContext(self.connection) as captured:
                getattr(self, write)(1)
            labels[write] = [_statement_label(query["sql"]) for query in captured.captured_queries]
        return labels

    def info(self) -> dict:
        discovery = []
        for path in ("/scim/v2/ResourceTypes", "/scim/v2/Schemas"):
            document = self.client.get(path).json()
            discovery.append("present" if "totalResults" in document else "MISSING")
        plan = ""
        if self.connection.vendor == "postgresql":
            with self.connection.cursor() as cursor:
                if self.side == "ours":
                    cursor.execute("EXPLAIN SELECT * FROM directory_user WHERE LOWER(username) = %s", ["user000042"])
                else:
                    cursor.execute("EXPLAIN SELECT * FROM auth_user WHERE UPPER(auth_user.username) = UPPER(%s)", ["u"])
                plan = cursor.fetchall()[0][0].split("  (")[0].strip()
        return {
            "setup_s": self.setup_s,
            "discovery_total_results": "/".join(discovery),
            "plan": plan,
            "profile_plans": self._profile_plans() if self.side == "ours" else {},
        }

    def _profile_plans(self) -> dict[str, str]:
        """The scan each profile filter's query starts from (its index, or a sequential scan)."""
        from apps.directory.models import User
        from apps.scim_server import filters
        from apps.scim_server.user_resources import USER_TARGET

        texts = {
            "title eq": 'title eq "Title 7"',
            "department eq": f'{ENTERPRISE}:department eq "Department 7"',
            "manager.value eq": f'{ENTERPRISE}:manager.value eq "{self.manager_ids[0]}"',
            "phoneNumbers.value eq": 'phoneNumbers.value eq "+1 555 0000007"',
        }
        plans = {}
        for name, text in texts.items():
            queryset = filters.filter_queryset(User.objects.all(), text, USER_TARGET)
            sql, params = queryset.query.sql_with_params()
            with self.connection.cursor() as cursor:
                cursor.execute(
                    f"EXPLAIN QUERY PLAN {sql}" if self.connection.vendor == "sqlite" else f"EXPLAIN {sql}", params
                )
                rows = [" ".join(str(part) for part in row) for row in cursor.fetchall()]
            scans = [row for row in rows if re.search(r"Scan|SCAN|SEARCH", row)]
            plans[name] = (scans[-1] if scans else rows[0]).strip()[:150]
        return plans

    def serve(self) -> None:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            self.connection.close_if_unusable_or_obsolete()
            args = command.get("args", [])
            if command["op"] != "info":
                self.use(args.pop())  # every measurement names the client it is made with
            result = getattr(self, command["op"])(*args)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
