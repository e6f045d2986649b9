"""Reads at a million users: SCIM, the console, the admin API, a connector's scope and its dry-run preview.

    .venv/bin/python bench/scale_reads.py                     # 1,000,000 users, 10,000 groups
    BENCH_SCALE=0.02 .venv/bin/python bench/scale_reads.py    # 20,000 users, 200 groups: a quick run

The directory comes from bench/scale_data.py (COPY into `idp_bench_scale` on 127.0.0.1:5432, or
BENCH_SCALE_DATABASE_URL; kept between runs, loaded again only when the sizes change). A child
process then runs the portal (`idp_portal.settings`, DEBUG off, static files collected) against it
and drives it through Django's test client, as the other benches do: a figure is what the server
spends on a request (authentication, middleware, template or serializer included), without the
network. The SCIM client has a bearer token, the API client an API token, the console client an
admin's session with its second factor.

Printed beside its goal with PASS/MISS (median or p95 as the goal says, over interleaved rounds):
SCIM `filter=userName eq` (random users), a SCIM page of 100 (at the start, middle and end of the
directory), the console's user search (a family name, about 0.5 % of users, and one username) and a
user's page (members of the largest group, of many groups), `/api/v1/users?search=`, a connector's
scope count (every department assigned: all users) and the dry-run preview's first page (the
console's Preview page). The baseline, timed in the same process, is a plain fetch of one user by
primary key. The machine's load average is printed with the figures.
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import scale_data  # noqa: E402 - a sibling module of the bench, found through sys.path

ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "20"))
# (name, statistic, goal in ms)
GOALS = {
    "scim_filter": ("SCIM filter=userName eq", "median", 5.0),
    "scim_page": ("SCIM page of 100", "median", 40.0),
    "console_search": ("console user search", "p95", 150.0),
    "console_user": ("console user's page", "p95", 150.0),
    "api_search": ("/api/v1/users?search=", "p95", 150.0),
    "scope_count": ("connector scope count", "p95", 1000.0),
    "preview": ("dry-run preview, first page", "p95", 1000.0),
}


def load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def child_env(database_url: str, var_dir: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(BENCH_DIR)])}
    env.update(
        DJANGO_SETTINGS_MODULE="idp_portal.settings",
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY="bench-only-not-secret",
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="testserver,127.0.0.1",
        LOG_LEVEL="ERROR",
        SCIM_RATE_LIMIT_PER_MINUTE="0",
        IDP_VAR_DIR=var_dir,
        STATIC_ROOT=os.path.join(var_dir, "static"),
    )
    env.pop("REDIS_URL", None)
    return env


def verdict(value: float, goal: float) -> str:
    return "PASS" if value < goal else "MISS"


def main() -> None:
    sizes = scale_data.scale_sizes()
    database_url = scale_data.scale_database_url(sizes)
    scale_data.ensure_database(database_url)
    data = scale_data.ensure_scale_data(
        database_url, users=sizes["users"], groups=sizes["groups"], largest_group=sizes["largest_group"]
    )
    how = "generated" if data.generated else "already there, checked"
    print(
        f"Directory: {data.users:,} users, {data.groups:,} groups (largest {data.largest_group:,}), "
        f"{data.memberships:,} memberships ({how} in {data.seconds:.0f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="scale-reads-") as var_dir:
        command = [sys.executable, str(Path(__file__).resolve()), "--child"]
        output = subprocess.run(
            command, cwd=PROJECT_ROOT, env=child_env(database_url, var_dir), capture_output=True, text=True
        )
    if output.returncode != 0:
        sys.stderr.write(output.stderr[-6000:])
        raise SystemExit("the measuring process failed")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    print(
        f"{load_average()} (after the run); {ROUNDS} rounds; baseline (one user by pk): {result['baseline_ms']:.2f} ms"
    )
    base = result["baseline_ms"]
    print(f"  {'figure':<34}{'median ms':>10}{'p95 ms':>9}{'x base':>8}{'queries':>9}  goal")
    for key, (label, statistic, goal) in GOALS.items():
        row = result["figures"][key]
        value = row[statistic]
        print(
            f"  {label:<34}{row['median']:>10.1f}{row['p95']:>9.1f}{row['median'] / base:>8.1f}{row['queries']:>9}  "
            f"{statistic} < {goal:.0f} ms: {verdict(value, goal)}"
        )
    for note in result["notes"]:
        print(f"  {note}")


# --- Child: measure ---------------------------------------------------------------------------------


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000


class Child:
    def __init__(self) -> None:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("collectstatic", interactive=False, verbosity=0)
        from apps.connectors.models import Connector

        self.connector = Connector.objects.get(slug=scale_data.CONNECTOR_SLUG)
        self.chooser = random.Random(7)

    # Clients -------------------------------------------------------------------------------------

    def _admin(self):
        from apps.directory import services as directory
        from apps.directory.selectors import user_get_by_username

        admin = user_get_by_username("bench.scale.admin")
        if admin is None:
            admin = directory.user_create(
                actor=None, username="bench.scale.admin", email="bench.scale.admin@example.com"
            )
            directory.user_set_admin_role(actor=None, user=admin, role="super_admin")
        return admin

    def console_client(self, admin):
        from django.test import Client
        from django_otp import DEVICE_ID_SESSION_KEY
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from apps.portal.services import LAST_SEEN_KEY, SIGNED_IN_AT_KEY

        device = TOTPDevice.objects.filter(user=admin).first() or TOTPDevice.objects.create(
            user=admin, name="Authenticator app", confirmed=True
        )
        client = Client()
        client.force_login(admin, backend="apps.portal.backends.PortalBackend")
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session[SIGNED_IN_AT_KEY] = session[LAST_SEEN_KEY] = int(time.time()) + 24 * 3600
        session.save()
        return client

    def scim_headers(self) -> dict:
        from apps.scim_server.services import scim_token_create

        _, secret = scim_token_create(actor=None, name=f"bench scale reads {time.time():.0f}")
        return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    def api_headers(self, admin) -> dict:
        from apps.api.services import api_token_create

        _, secret = api_token_create(actor=None, user=admin, name=f"bench scale reads {time.time():.0f}")
        return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    # Measuring -----------------------------------------------------------------------------------

    def measure(self) -> dict:
        from django.db import connection
        from django.test import Client

        from apps.connectors.selectors import users_in_scope_count
        from apps.directory.models import Membership, User

        admin = self._admin()
        console, scim, api = self.console_client(admin), self.scim_headers(), self.api_headers(admin)
        bare = Client()  # SCIM and the API by their tokens alone, without the console's session cookie
        data = scale_data
        marker = self._marker()
        users = marker["users"]
        # The largest group's members, and the users in the most groups: the heaviest user pages.
        busiest = list(
            Membership.objects.values_list("user_id")
            .annotate(n=_count())
            .order_by("-n")
            .values_list("user_id", flat=True)[:5]
        )
        largest_member = Membership.objects.filter(group_id=data.group_id(0)).values_list("user_id", flat=True)[:5]
        user_pages = [str(pk) for pk in (*busiest, *largest_member)]
        family = data.user_names(users // 3)[1]
        starts = [1, users // 2, max(1, users - 99)]

        def scim_filter(round_: int):
            name = data.username(self.chooser.randrange(users))
            return bare.get("/scim/v2/Users", {"filter": f'userName eq "{name}"'}, **scim)

        def scim_page(round_: int):
            return bare.get("/scim/v2/Users", {"startIndex": starts[round_ % 3], "count": 100}, **scim)

        def console_search(round_: int):
            term = family if round_ % 2 else data.username(self.chooser.randrange(users))
            return console.get("/console/users/", {"q": term})

        def console_user(round_: int):
            return console.get(f"/console/users/{user_pages[round_ % len(user_pages)]}/")

        def api_search(round_: int):
            term = family if round_ % 2 else data.username(self.chooser.randrange(users))
            return bare.get("/api/v1/users/", {"search": term}, **api)

        def scope_count(round_: int):
            return users_in_scope_count(self.connector)

        def preview(round_: int):
            return console.get(f"/console/connectors/{self.connector.slug}/provisioning/preview/")

        def baseline(round_: int):
            return User.objects.filter(pk=data.user_id(self.chooser.randrange(users))).first()

        probes = {
            "scim_filter": (scim_filter, 5),
            "scim_page": (scim_page, 1),
            "console_search": (console_search, 1),
            "console_user": (console_user, 1),
            "api_search": (api_search, 1),
            "scope_count": (scope_count, 1),
            "preview": (preview, 1),
            "baseline": (baseline, 5),
        }
        samples: dict[str, list[float]] = {name: [] for name in probes}
        queries: dict[str, int] = {}
        connection.force_debug_cursor = True
        for round_ in range(ROUNDS):
            # Interleaved: whatever else the machine does weighs on every figure alike.
            for name, (probe, repeat) in probes.items():
                for _ in range(repeat):
                    connection.queries_log.clear()
                    started = time.perf_counter()
                    response = probe(round_)
                    samples[name].append(time.perf_counter() - started)
                    queries.setdefault(name, len(connection.queries))
                    status = getattr(response, "status_code", 200)
                    if status != 200:
                        raise SystemExit(f"{name} answered {status}: {response.content[:500]!r}")
        figures = {
            name: {"median": _percentile(values, 0.5), "p95": _percentile(values, 0.95), "queries": queries[name]}
            for name, values in samples.items()
        }
        notes = [
            f"search terms: family name {family!r} and random usernames; SCIM pages at startIndex {starts}",
            f"scope count shown: {users_in_scope_count(self.connector)} users (every user is in scope)",
        ]
        return {"baseline_ms": figures.pop("baseline")["median"], "figures": figures, "notes": notes}

    def _marker(self) -> dict:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT sizes FROM bench_scale_marker WHERE key = 'directory'")
            value = cursor.fetchone()[0]
        return json.loads(value) if isinstance(value, str) else value


def _count():
    from django.db.models import Count

    return Count("group_id")


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(Child().measure()))
    else:
        main()
