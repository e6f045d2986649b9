"""The console's user list at 100,000 users, against a plain fetch of the first 50 users.

    .venv/bin/python bench/console_user_list.py                 # 100,000 users: SQLite, then PostgreSQL
    .venv/bin/python bench/console_user_list.py --users 20000   # smaller
    .venv/bin/python bench/console_user_list.py --only sqlite   # one backend

Each backend runs in its own subprocess (`idp_portal.settings`, DEBUG off, migrated): SQLite in a
temporary file, PostgreSQL in `idp_helper_a_bench` on 127.0.0.1:5432 (dropped and created here,
dropped again at the end; skipped when the server cannot be reached). Users are bulk-inserted with
one precomputed unusable password (no hashing): 90% active, 7% suspended, 3% staged, 200 groups
with one or two groups each, and a connector assigned to 10 groups and 200 users directly. Then
ANALYZE, as autovacuum or a maintenance job would.

Each page is fetched through Django's test client as a signed-in admin (session, second factor,
template and all), so a figure is what the server spends on the request. Printed for the first
page, a search (a last name: about 1% of users), a search that finds one user (every row must be
looked at, unless an index serves it), a status filter, a group filter, a connector filter and the
last page: the median time, the query count, and the ratio to the baseline, a plain
`User.objects.order_by("username")[:50]` fetch timed in the same process. Also the part of each
request that is database work (count, page, groups of the page), timed on its own. A search is not
counted (it reads one row past its page), so its matches show as "not counted". It prints and
never asserts: a missed goal is MISS.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_DATABASE = "idp_helper_a_bench"
GROUPS = 200
BATCH = 5000
ROUNDS = 15
LAST_NAMES = [f"Surname{index:03d}" for index in range(100)]
# A page an admin waits for. The ratios to the baseline are printed, not judged: the request
# includes the session, the second-factor check and the template, which the baseline does not.
GOALS = {"page_ms": 150.0}


# --- Parent: one subprocess per backend, then the table ---------------------------------------


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return False


def _pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def _run_child(database_url: str, users: int, var_dir: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.update(
        DJANGO_SETTINGS_MODULE="idp_portal.settings",
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY="bench-only-not-secret",
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="testserver",
        LOG_LEVEL="ERROR",
        IDP_VAR_DIR=var_dir,
        STATIC_ROOT=os.path.join(var_dir, "static"),
    )
    env.pop("REDIS_URL", None)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--users", str(users)]
    output = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    if output.returncode != 0:
        sys.stderr.write(output.stderr[-4000:])
        raise SystemExit(f"the benchmark process for {database_url.split(':')[0]} failed")
    return json.loads(output.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _report(backend: str, result: dict) -> None:
    baseline = result["baseline_ms"]
    print(f"\n{backend}, {result['users']:,} users (setup {result['setup_s']:.0f} s; median of {ROUNDS} requests)")
    print(f"  baseline: User.objects.order_by('username')[:50] = {baseline:.2f} ms")
    header = (
        f"  {'page':<18}{'request ms':>11}{'x base':>9}{'queries':>9}{'db ms':>9}{'x base':>9}{'matches':>12}  goal"
    )
    print(header)
    for name, row in result["pages"].items():
        rows = "not counted" if row["count"] is None else f"{row['count']:,}"
        print(
            f"  {name:<18}{row['request_ms']:>11.1f}{row['request_ms'] / baseline:>9.1f}{row['queries']:>9}"
            f"{row['db_ms']:>9.1f}{row['db_ms'] / baseline:>9.1f}{rows:>12}  "
            f"{_verdict(row['request_ms'] <= GOALS['page_ms'])}"
        )
    print(f"  goal: every page under {GOALS['page_ms']:.0f} ms, with the same query count whatever the filter")
    counts = {row["queries"] for row in result["pages"].values()}
    print(f"  query counts: {sorted(counts)} ({'fixed' if len(counts) <= 2 else 'varies'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_Child(args.users).measure()))
        return
    with tempfile.TemporaryDirectory(prefix="console-user-list-") as scratch:
        if args.only in (None, "sqlite"):
            _report("SQLite", _run_child(f"sqlite:///{scratch}/bench.sqlite3", args.users, scratch))
        if args.only in (None, "postgresql"):
            if not _pg_reachable():
                print(f"\nPostgreSQL: not reachable at {PG_SERVER}, skipped")
                return
            _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            _pg_admin(f'CREATE DATABASE "{PG_DATABASE}"')
            try:
                _report("PostgreSQL", _run_child(f"{PG_SERVER}/{PG_DATABASE}", args.users, scratch))
            finally:
                _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


# --- Child: load, sign in, measure -------------------------------------------------------------


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class _Child:
    def __init__(self, users: int) -> None:
        import django

        django.setup()
        self.users = users

    def _load(self) -> None:
        from django.contrib.auth.hashers import make_password
        from django.core.management import call_command
        from django.db import connection, transaction

        from apps.connectors import services as connector_services
        from apps.connectors.models import Assignment
        from apps.directory.models import Group, Membership, User, UserStatus

        call_command("migrate", verbosity=0)
        # DEBUG off serves hashed static names from a manifest, as deployed.
        call_command("collectstatic", interactive=False, verbosity=0)
        unusable = make_password(None)
        groups = Group.objects.bulk_create([Group(name=f"group-{index:03d}") for index in range(GROUPS)])
        for start in range(0, self.users, BATCH):
            with transaction.atomic():
                batch = []
                for index in range(start, min(start + BATCH, self.users)):
                    status = (
                        UserStatus.SUSPENDED
                        if index % 100 < 7
                        else UserStatus.STAGED
                        if index % 100 < 10
                        else UserStatus.ACTIVE
                    )
                    first, last = f"Given{index % 997}", LAST_NAMES[(index * 7) % len(LAST_NAMES)]
                    batch.append(
                        User(
                            username=f"user{index:06d}",
                            email=f"user{index:06d}@example.com",
                            first_name=first,
                            last_name=last,
                            display_name=f"{first} {last}",
                            employee_id=f"E{index:06d}",
                            status=status,
                            password=unusable,
                        )
                    )
                created = User.objects.bulk_create(batch)
                memberships = []
                for offset, user in enumerate(created):
                    index = start + offset
                    memberships.append(Membership(group=groups[index % GROUPS], user=user))
                    if index % 2:
                        memberships.append(Membership(group=groups[(index * 31 + 7) % GROUPS], user=user))
                Membership.objects.bulk_create(memberships, ignore_conflicts=True)
        connector = connector_services.connector_create(actor=None, template="generic-scim", name="Bench App")
        Assignment.objects.bulk_create([Assignment(connector=connector, group=group) for group in groups[:10]])
        direct = User.objects.order_by("-username")[:200]
        Assignment.objects.bulk_create([Assignment(connector=connector, user=user) for user in direct])
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.connector_slug = connector.slug
        self.group_id = str(groups[3].pk)

    def _client(self):

        from django.test import Client
        from django_otp import DEVICE_ID_SESSION_KEY
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from apps.directory import services as directory
        from apps.portal.services import LAST_SEEN_KEY, SIGNED_IN_AT_KEY

        admin = directory.user_create(actor=None, username="bench.admin", email="bench.admin@example.com")
        directory.user_set_admin_role(actor=None, user=admin, role="admin")
        device = TOTPDevice.objects.create(user=admin, name="Authenticator app", confirmed=True)
        client = Client()
        client.force_login(admin, backend="apps.portal.backends.PortalBackend")
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session[SIGNED_IN_AT_KEY] = session[LAST_SEEN_KEY] = int(time.time())
        session.save()
        return client

    def measure(self) -> dict:
        from django.conf import settings
        from django.db import connection, reset_queries

        from apps.connectors.selectors import users_filtered as filtered_users
        from apps.directory.models import User
        from apps.directory.selectors import user_page

        started = time.monotonic()
        self._load()
        setup_s = time.monotonic() - started
        client = self._client()
        last_page = -(-(self.users + 1) // settings.CONSOLE_PAGE_SIZE)
        search = LAST_NAMES[42]
        pages = {
            "first page": ({}, 1),
            "search": ({"q": search}, 1),
            "search, one user": ({"q": "user042424"}, 1),
            "status filter": ({"status": "suspended"}, 1),
            "group filter": ({"group": self.group_id}, 1),
            "connector filter": ({"connector": self.connector_slug}, 1),
            "last page": ({}, last_page),
        }

        def baseline() -> None:
            list(User.objects.order_by("username")[:50])

        def database_part(filters: dict, number: int) -> int:
            arguments = {"search" if key == "q" else key: value for key, value in filters.items()}
            page, _ = user_page(
                filtered_users(**arguments),
                searching=bool(filters.get("q")),
                number=number,
                size=settings.CONSOLE_PAGE_SIZE,
            )
            for row in page.object_list:
                list(row.groups.all())  # prefetched: no query
            return page.paginator.count

        baseline_samples, results = [], {}
        samples = {name: {"request": [], "db": []} for name in pages}
        connection.force_debug_cursor = True
        for _ in range(ROUNDS):
            # Interleaved, so that whatever else the machine does weighs on every figure alike.
            baseline_samples.append(_timed(baseline))
            for name, (filters, number) in pages.items():
                query = {**filters, "page": number}
                reset_queries()
                elapsed = _timed(lambda query=query: _ok(client.get("/console/users/", query)))
                queries = len(connection.queries)
                samples[name]["request"].append(elapsed)
                samples[name]["db"].append(_timed(lambda f=filters, n=number: database_part(f, n)))
                if name not in results:  # setdefault would run the page query again every round
                    results[name] = {"queries": queries, "count": database_part(filters, number)}
        for name, data in samples.items():
            results[name]["request_ms"] = _median_ms(data["request"])
            results[name]["db_ms"] = _median_ms(data["db"])
        return {
            "users": self.users,
            "setup_s": setup_s,
            "baseline_ms": _median_ms(baseline_samples),
            "pages": results,
        }


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _ok(response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"the user list answered {response.status_code}")


if __name__ == "__main__":
    main()
