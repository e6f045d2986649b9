"""A large directory on PostgreSQL, bulk-loaded with COPY: users, groups, memberships, a connector, audit rows.

    .venv/bin/python bench/scale_data.py                                  # 1,000,000 users, 10,000 groups
    .venv/bin/python bench/scale_data.py --users 20000 --groups 200 --largest-group 2000
    .venv/bin/python bench/scale_data.py --audit-rows 10000000           # and the audit log
    .venv/bin/python bench/scale_data.py --database-url postgres://postgres@127.0.0.1:5432/idp_bench_scale

From Python (the API the other benchmarks use):

    from scale_data import ensure_scale_data, ensure_audit_events
    info = ensure_scale_data(database_url, users=1_000_000, groups=10_000, largest_group=100_000)
    ensure_audit_events(database_url, rows=10_000_000)

The database must exist; it is migrated here (`manage.py migrate` in a subprocess). The generator
owns the rows it writes: when the sizes asked for differ from what a marker row (table
`bench_scale_marker`) says is there, it empties the directory and connector tables (TRUNCATE) and
loads again; when they match it does nothing and answers at once. The audit rows have a marker of
their own, so the directory and the audit log are loaded (and reloaded) apart.

The shape (deterministic: the same sizes give the same rows):

- users `user0000000` ... with `@example.com` emails, given and family names from 500 x 200 lists
  (one family name matches about 0.5 % of users), employee ids, an external id for 80 %,
  90 % active, 7 % suspended, 3 % staged, created over the last five years, an unusable password
  (no hashing). Ids come from `user_id(index)` / `group_id(index)` (UUIDs whose low bits are the
  index), so callers can name a row without a query. The first 20 users are staff (console admins).
- groups: a tenth are departments that split the users between them (every user is in exactly one;
  sizes follow a power law whose largest is `largest_group`), the rest are teams of 5 up to a
  twentieth of `largest_group` members drawn at random (a power law too): about two groups per user.
- one SCIM connector, "Scale App" (slug `scale-app`, template generic-scim), created through the
  product's own `connector_create`, with Identity Management settings (disabled unless a SCIM base
  URL is given) and assigned to every department (so every user is in its scope) and to 100 users
  directly. Assignments are inserted without outbox events: nothing is pushed until the caller
  starts a sync.
- audit events (`ensure_audit_events`): over the last two years in time order, about 35 actions with
  sign-ins most common, actors among the staff users (or none, for the system), targets among the
  users, groups and the connector.

Indexes of a table being filled are dropped first and built again afterwards from their own
definitions (faster than keeping them up to date row by row), then the tables are ANALYZEd.
"""

import argparse
import io
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
DEFAULT_DATABASE_URL = os.environ.get("BENCH_SCALE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idp_bench_scale")

USERS = 1_000_000
GROUPS = 10_000
LARGEST_GROUP = 100_000
AUDIT_ROWS = 10_000_000
STAFF_USERS = 20
DIRECT_ASSIGNMENTS = 100
CONNECTOR_SLUG = "scale-app"
# Django's make_password(None) shape: "!" and 40 characters; never a valid hash.
UNUSABLE_PASSWORD = "!scaledata" + "x" * 30
_USER_ID_PREFIX = 0x5CA1E0000000000A
_GROUP_ID_PREFIX = 0x5CA1E0000000000B
_SEED = 18
_CHUNK = 50_000


def _words(text: str) -> list[str]:
    return text.split()


_FIRST_STEMS = _words("Ana Ben Cleo Dov Eli Fay Gus Hana Ivo Jo")
_FIRST_ENDINGS = _words(
    "- a e i o y n l r s th ra na la ko mi ta ri lu ve ne da so ka bel dor win son mar lin rik nor sha vin ber "
    "ton ley ric mond ard ette ina ius ian ola ika ara ita uel ael"
)
_LAST_STEMS = _words("Abbott Brandt Castro Dunn Ekberg Fuentes Gallo Holm Ibsen Jansen")
_LAST_ENDINGS = _words("- son sen er man berg feld ley ton ford wood ez ini ova ski rud dal vik mark strand")
# 500 given names and 200 family names.
FIRST_NAMES = [stem + ending.strip("-") for stem in _FIRST_STEMS for ending in _FIRST_ENDINGS]
LAST_NAMES = [stem + ending.strip("-") for stem in _LAST_STEMS for ending in _LAST_ENDINGS]


@dataclass(frozen=True)
class ScaleData:
    """What the database holds after `ensure_scale_data`."""

    users: int
    groups: int
    largest_group: int
    memberships: int
    departments: int
    connector_id: str
    connector_slug: str
    seconds: float  # spent by this call: 0-ish when the data was already there
    generated: bool  # False when the marker said it was already there


@dataclass(frozen=True)
class AuditData:
    rows: int
    seconds: float
    generated: bool


def user_id(index: int) -> str:
    """The id of generated user number `index` (0-based)."""
    return str(uuid.UUID(int=(_USER_ID_PREFIX << 64) | index, version=4))


def group_id(index: int) -> str:
    return str(uuid.UUID(int=(_GROUP_ID_PREFIX << 64) | index, version=4))


def username(index: int) -> str:
    return f"user{index:07d}"


def group_name(index: int, groups: int) -> str:
    return f"dept-{index:05d}" if index < max(1, groups // 10) else f"team-{index:05d}"


def user_status(index: int) -> str:
    slot = (index * 7919) % 100
    return "suspended" if slot < 7 else "staged" if slot < 10 else "active"


def user_names(index: int) -> tuple[str, str]:
    return FIRST_NAMES[(index * 31) % len(FIRST_NAMES)], LAST_NAMES[(index * 17 + index // 200) % len(LAST_NAMES)]


# --- Sizes ----------------------------------------------------------------------------------------


def department_sizes(users: int, departments: int, largest: int) -> list[int]:
    """Sizes of `departments` groups that split `users` between them, largest first (a power law)."""
    largest = min(largest, users)
    if largest * departments < users:
        raise ValueError(f"{departments} departments of at most {largest} cannot hold {users} users")

    def total(exponent: float) -> float:
        return sum(max(1.0, largest * rank**-exponent) for rank in range(1, departments + 1))

    low, high = 0.0, 8.0
    for _ in range(60):
        middle = (low + high) / 2
        if total(middle) > users:
            low = middle
        else:
            high = middle
    sizes = [max(1, int(largest * rank**-high)) for rank in range(1, departments + 1)]
    sizes[0] = largest
    # Whatever rounding left over goes to the departments after the largest, one by one.
    shortfall, rank = users - sum(sizes), 1
    while shortfall != 0 and departments > 1:
        step = 1 if shortfall > 0 else -1
        if (step > 0 and sizes[rank] < largest) or (step < 0 and sizes[rank] > 1):
            sizes[rank] += step
            shortfall -= step
        rank = rank % (departments - 1) + 1
    return sizes


def team_sizes(teams: int, largest: int, users: int) -> list[int]:
    top = max(5, min(users, largest // 20))
    return [max(5, min(users, int(top * rank**-0.5))) for rank in range(1, teams + 1)]


# --- PostgreSQL helpers ---------------------------------------------------------------------------


def _connect(database_url: str):
    import psycopg

    return psycopg.connect(database_url, autocommit=True)


def _migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT)}
    env.setdefault("SECRET_KEY", "bench-only-not-secret")
    env.setdefault("DJANGO_SETTINGS_MODULE", "idp_portal.settings")
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=PROJECT_ROOT, env=env, check=True
    )


def _recount_rows(database_url: str) -> None:
    """The row counters followed the COPY (their triggers fire even under replica mode), but the key
    ranges SCIM pages seek through were chosen at `migrate`, before the rows: choose them again."""
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT)}
    env.setdefault("SECRET_KEY", "bench-only-not-secret")
    env.setdefault("DJANGO_SETTINGS_MODULE", "idp_portal.settings")
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "recount_rows"], cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )


def _marker(connection, key: str) -> dict | None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS bench_scale_marker (key text PRIMARY KEY, sizes jsonb NOT NULL, "
        "finished timestamptz NOT NULL DEFAULT now())"
    )
    row = connection.execute("SELECT sizes FROM bench_scale_marker WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def _set_marker(connection, key: str, sizes: dict | None) -> None:
    from psycopg.types.json import Jsonb

    if sizes is None:
        connection.execute("DELETE FROM bench_scale_marker WHERE key = %s", (key,))
        return
    connection.execute(
        "INSERT INTO bench_scale_marker (key, sizes) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET sizes = EXCLUDED.sizes, finished = now()",
        (key, Jsonb(sizes)),
    )


def _secondary_indexes(connection, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the table's indexes that back no constraint (so they can be dropped)."""
    return connection.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND i.schemaname = 'public' "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        (table,),
    ).fetchall()


class _IndexesDropped:
    """Drop a table's secondary indexes for a bulk load; build them again (from their definitions) after."""

    def __init__(self, connection, tables: list[str]) -> None:
        self.connection, self.tables, self.saved = connection, tables, []

    def __enter__(self):
        for table in self.tables:
            for name, definition in _secondary_indexes(self.connection, table):
                self.saved.append(definition)
                self.connection.execute(f'DROP INDEX IF EXISTS "{name}"')
        return self

    def __exit__(self, *exc_info) -> None:
        self.connection.execute("SET maintenance_work_mem = '512MB'")
        for definition in self.saved:
            self.connection.execute(
                definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1).replace(
                    "CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX IF NOT EXISTS", 1
                )
            )


def _copy(connection, table: str, columns: tuple[str, ...], lines) -> int:
    """COPY text lines (already tab-separated, escaped) into the table, in chunks; returns the row count."""
    count = 0
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            count += 1
            if count % _CHUNK == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    return count


def _skip_foreign_key_checks(connection) -> None:
    # The rows are consistent by construction; the FK triggers would double the load time. Needs a
    # superuser (the bench's postgres); without one the checks simply run.
    try:
        connection.execute("SET session_replication_role = replica")
    except Exception:  # noqa: BLE001 - not a superuser: keep the checks
        return


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


# --- Directory ------------------------------------------------------------------------------------


TITLES = ("Engineer", "Senior Engineer", "Designer", "Product Manager", "Account Executive", "Support Agent",
          "Recruiter", "Analyst", "Accountant", "Director")  # fmt: skip
PROFILE_DEPARTMENTS = ("Engineering", "Sales", "Support", "Marketing", "Finance", "People", "Legal", "Operations")
# The profile columns the generator leaves empty, in USER_COLUMNS order: JSON lists and objects, then strings.
EMPTY_PROFILE = "\t".join(["[]", "[]", "[]", "[]", "{}"] + [""] * 10)


def _user_lines(users: int, now: datetime):
    span = 5 * 365 * 86400
    for index in range(users):
        first, last = user_names(index)
        name = username(index)
        created = timestamp(now - timedelta(seconds=span - index * span // max(users, 1)))
        staff = "t" if index < STAFF_USERS else "f"
        role = "admin" if index < STAFF_USERS else ""
        external = f"hr-{index:08d}" if index % 5 else ""
        yield (
            f"{user_id(index)}\t{UNUSABLE_PASSWORD}\t\\N\t{created}\t{created}\t{name}\t{name}@example.com\t"
            f"{first}\t{last}\t{first} {last}\tE{index:07d}\t{external}\t{user_status(index)}\t{staff}\tf\t{role}\tf\t"
            f"{TITLES[index % len(TITLES)]}\t{PROFILE_DEPARTMENTS[index % len(PROFILE_DEPARTMENTS)]}\t{EMPTY_PROFILE}\n"
        )


USER_COLUMNS = tuple(
    _words(
        "id password last_login created updated username email first_name last_name display_name employee_id "
        "external_id status is_staff is_superuser admin_role must_change_password title department "
        "addresses emails phone_numbers photos custom_attributes cost_center division locale nick_name organization "
        "preferred_language profile_url timezone user_type email_type"
    )
)


def group_memberships(users: int, groups: int, largest: int) -> tuple[list[int], list[list[int]]]:
    """Group sizes and, per group, the indexes of its members (departments first, largest first)."""
    departments = max(1, groups // 10)
    sizes = department_sizes(users, departments, largest)
    members: list[list[int]] = []
    start = 0
    order = list(range(users))
    random.Random(_SEED).shuffle(order)  # departments are not runs of consecutive usernames
    for size in sizes:
        members.append(sorted(order[start : start + size]))
        start += size
    del order
    chooser = random.Random(_SEED + 1)
    for size in team_sizes(groups - departments, largest, users):
        members.append(chooser.sample(range(users), size))
    return [len(group) for group in members], members


def _load_directory(connection, users: int, groups: int, largest: int, now: datetime) -> tuple[int, int]:
    connection.execute(
        "TRUNCATE directory_user, directory_group, directory_membership, connectors_connector, "
        "connectors_assignment CASCADE"
    )
    _skip_foreign_key_checks(connection)
    with _IndexesDropped(connection, ["directory_user", "directory_group", "directory_membership"]):
        _copy(connection, "directory_user", USER_COLUMNS, _user_lines(users, now))
        _, members = group_memberships(users, groups, largest)
        departments = max(1, groups // 10)
        group_lines = (
            f"{group_id(index)}\t{timestamp(now - timedelta(days=900 - index % 900))}\t{timestamp(now)}\t"
            + f"{group_name(index, groups)}\t{'Department' if index < departments else 'Team'} {index}"
            + f"\tgrp-{index:06d}\n"
            for index in range(groups)
        )
        _copy(
            connection,
            "directory_group",
            ("id", "created", "updated", "name", "description", "external_id"),
            group_lines,
        )
        stamp = timestamp(now)
        membership_lines = (
            f"{group_id(index)}\t{user_id(member)}\t{stamp}\n"
            for index, group in enumerate(members)
            for member in group
        )
        memberships = _copy(connection, "directory_membership", ("group_id", "user_id", "created"), membership_lines)
    connection.execute("SET session_replication_role = DEFAULT")
    return memberships, departments


def _create_connector(database_url: str, scim_base_url: str, scim_token: str) -> str:
    """Through the product's own service, in a Django subprocess (so that callers need no Django)."""
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_ROOT)}
    env.setdefault("SECRET_KEY", "bench-only-not-secret")
    env.setdefault("DJANGO_SETTINGS_MODULE", "idp_portal.settings")
    env.update(LOG_LEVEL="ERROR", SCALE_SCIM_BASE_URL=scim_base_url, SCALE_SCIM_TOKEN=scim_token)
    env.pop("REDIS_URL", None)
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--create-connector"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return output.stdout.strip().splitlines()[-1]


def _create_connector_here() -> None:
    import django

    django.setup()
    from apps.connectors import services

    provisioning: dict = {}
    if os.environ.get("SCALE_SCIM_BASE_URL"):
        provisioning = {"base_url": os.environ["SCALE_SCIM_BASE_URL"], "enabled": True}
        if os.environ.get("SCALE_SCIM_TOKEN"):
            provisioning["token"] = os.environ["SCALE_SCIM_TOKEN"]
    connector = services.connector_create(
        actor=None, template="generic-scim", name="Scale App", slug=CONNECTOR_SLUG, provisioning=provisioning
    )
    print(connector.pk)


def _assign(connection, connector_id: str, departments: int, users: int, now: datetime) -> None:
    stamp = timestamp(now)
    lines = [f"{connector_id}\t\\N\t{group_id(index)}\t{stamp}\n" for index in range(departments)]
    step = max(1, users // DIRECT_ASSIGNMENTS)
    lines += [f"{connector_id}\t{user_id(index)}\t\\N\t{stamp}\n" for index in range(0, users, step)][
        :DIRECT_ASSIGNMENTS
    ]
    _copy(connection, "connectors_assignment", ("connector_id", "user_id", "group_id", "created"), lines)


def ensure_scale_data(
    database_url: str = DEFAULT_DATABASE_URL,
    *,
    users: int = USERS,
    groups: int = GROUPS,
    largest_group: int = LARGEST_GROUP,
    scim_base_url: str = "",
    scim_token: str = "",
    migrate: bool = True,
    log=print,
) -> ScaleData:
    """Make the database hold exactly this directory (see the module's docstring); idempotent."""
    started = time.monotonic()
    if migrate:
        _migrate(database_url)
    sizes = {"users": users, "groups": groups, "largest_group": largest_group, "version": 1}
    with _connect(database_url) as connection:
        existing = _marker(connection, "directory")
        if existing and {key: existing.get(key) for key in sizes} == sizes:
            return ScaleData(
                **{key: existing[key] for key in ("users", "groups", "largest_group")},
                memberships=existing["memberships"],
                departments=existing["departments"],
                connector_id=existing["connector_id"],
                connector_slug=CONNECTOR_SLUG,
                seconds=time.monotonic() - started,
                generated=False,
            )
        _set_marker(connection, "directory", None)
        _set_marker(connection, "audit", None)  # its rows name these users
        now = datetime.now(UTC)
        log(f"scale data: loading {users:,} users and {groups:,} groups (largest {largest_group:,})")
        memberships, departments = _load_directory(connection, users, groups, largest_group, now)
        connector_id = _create_connector(database_url, scim_base_url, scim_token)
        _assign(connection, connector_id, departments, users, now)
        for table in ("directory_user", "directory_group", "directory_membership", "connectors_assignment"):
            connection.execute(f"VACUUM ANALYZE {table}")
        _recount_rows(database_url)
        _set_marker(
            connection,
            "directory",
            {**sizes, "memberships": memberships, "departments": departments, "connector_id": connector_id},
        )
    seconds = time.monotonic() - started
    log(f"scale data: {users:,} users, {groups:,} groups, {memberships:,} memberships in {seconds:.0f} s")
    return ScaleData(
        users, groups, largest_group, memberships, departments, connector_id, CONNECTOR_SLUG, seconds, True
    )


# --- Audit log ------------------------------------------------------------------------------------

# (action, weight, target kind): sign-ins dominate a real trail.
AUDIT_ACTIONS = (
    ("portal.login.success", 400, "user"), ("portal.login.failure", 60, "user"), ("portal.mfa.success", 200, "user"),
    ("portal.mfa.failure", 10, "user"), ("portal.logout", 150, "user"), ("portal.lockout", 2, "user"),
    ("saml.sso.success", 300, "connector"), ("saml.sso.refused", 3, "connector"), ("saml.slo", 20, "connector"),
    ("user.create", 20, "user"), ("user.update", 40, "user"), ("user.suspend", 4, "user"),
    ("user.reactivate", 2, "user"), ("user.delete", 2, "user"), ("user.set_password", 6, "user"),
    ("group.create", 1, "group"), ("group.update", 2, "group"), ("group.members.add", 25, "group"),
    ("group.members.remove", 8, "group"), ("connector.update", 1, "connector"),
    ("connector.assignment.create", 2, "connector"), ("provisioning.sync", 1, "connector"),
    ("portal.password_reset", 3, "user"), ("scim_token.create", 1, "connector"),
)  # fmt: skip


def _audit_lines(rows: int, users: int, groups: int, connector_id: str, now: datetime):
    chooser = random.Random(_SEED + 2)
    actions = [entry for entry in AUDIT_ACTIONS for _ in range(entry[1])]
    span = 2 * 365 * 86400
    start = now - timedelta(seconds=span)
    step = span / rows
    for row in range(rows):
        action, _weight, kind = actions[chooser.randrange(len(actions))]
        created = timestamp(start + timedelta(seconds=row * step))
        if kind == "user":
            target = chooser.randrange(users)
            target_type, target_id, target_label = "directory.user", user_id(target), username(target)
        elif kind == "group":
            target = chooser.randrange(groups)
            target_type, target_id, target_label = "directory.group", group_id(target), group_name(target, groups)
        else:
            target_type, target_id, target_label = "connectors.connector", connector_id, "Scale App"
        if action.startswith(("portal.", "saml.")):
            actor = target if kind == "user" else chooser.randrange(users)
        elif action.startswith("provisioning."):
            actor = None
        else:
            actor = chooser.randrange(min(STAFF_USERS, users))
        actor_id, actor_label = (user_id(actor), username(actor)) if actor is not None else ("\\N", "system")
        after = '{"status": "active"}' if action.endswith((".update", ".create")) else "\\N"
        yield (
            f"{created}\t{actor_id}\t{actor_label}\t{action}\t{target_type}\t{target_id}\t{target_label}\t\\N\t"
            f"{after}\treq-{row:010d}\t10.{row % 250}.{row // 250 % 250}.{row % 7 + 1}\n"
        )


# Raised when the shape of the generated rows changes, so that an older load is replaced.
AUDIT_VERSION = 2
AUDIT_COLUMNS = tuple(
    _words("created actor_id actor_label action target_type target_id target_label before after request_id ip")
)


def ensure_audit_events(database_url: str = DEFAULT_DATABASE_URL, *, rows: int = AUDIT_ROWS, log=print) -> AuditData:
    """Make the audit log hold `rows` generated events over the last two years; needs `ensure_scale_data` first."""
    started = time.monotonic()
    with _connect(database_url) as connection:
        directory = _marker(connection, "directory")
        if directory is None:
            raise RuntimeError("run ensure_scale_data first: the audit rows name its users")
        existing = _marker(connection, "audit")
        if existing and existing.get("rows") == rows and existing.get("version") == AUDIT_VERSION:
            return AuditData(rows, time.monotonic() - started, False)
        log(f"scale data: loading {rows:,} audit events")
        connection.execute("TRUNCATE audit_auditevent RESTART IDENTITY")
        _skip_foreign_key_checks(connection)
        with _IndexesDropped(connection, ["audit_auditevent"]):
            lines = _audit_lines(
                rows, directory["users"], directory["groups"], directory["connector_id"], datetime.now(UTC)
            )
            _copy(connection, "audit_auditevent", AUDIT_COLUMNS, lines)
        connection.execute("SET session_replication_role = DEFAULT")
        connection.execute("VACUUM ANALYZE audit_auditevent")
        _set_marker(connection, "audit", {"rows": rows, "version": AUDIT_VERSION})
    seconds = time.monotonic() - started
    log(f"scale data: {rows:,} audit events in {seconds:.0f} s")
    return AuditData(rows, seconds, True)


def scale_sizes() -> dict:
    """The issue's sizes times BENCH_SCALE (1 by default; 0.02 for a quick run)."""
    factor = float(os.environ.get("BENCH_SCALE", "1"))
    return {
        "users": max(1000, int(USERS * factor)),
        "groups": max(20, int(GROUPS * factor)),
        "largest_group": max(100, int(LARGEST_GROUP * factor)),
        "audit_rows": max(10_000, int(AUDIT_ROWS * factor)),
    }


def scale_database_url(sizes: dict) -> str:
    """The issue's sizes in the default database; smaller runs in one of their own, so that a quick
    run never empties the large one."""
    if sizes["users"] == USERS:
        return DEFAULT_DATABASE_URL
    return f"{DEFAULT_DATABASE_URL}_{sizes['users']}"


def ensure_database(database_url: str) -> None:
    """Create the database when it does not exist (never drops it)."""
    import psycopg

    server, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = scale_sizes()
    parser.add_argument("--database-url", help="default: idp_bench_scale, with _<users> for other sizes")
    parser.add_argument("--users", type=int, default=sizes["users"])
    parser.add_argument("--groups", type=int, default=sizes["groups"])
    parser.add_argument("--largest-group", type=int, default=sizes["largest_group"])
    parser.add_argument("--audit-rows", type=int, default=sizes["audit_rows"], help="0: no audit events")
    parser.add_argument("--scim-base-url", default="")
    parser.add_argument("--create-connector", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.create_connector:
        _create_connector_here()
        return
    args.database_url = args.database_url or scale_database_url({"users": args.users})
    ensure_database(args.database_url)
    data = ensure_scale_data(
        args.database_url,
        users=args.users,
        groups=args.groups,
        largest_group=args.largest_group,
        scim_base_url=args.scim_base_url,
    )
    print(asdict(data))
    if args.audit_rows:
        print(asdict(ensure_audit_events(args.database_url, rows=args.audit_rows)))


if __name__ == "__main__":
    main()
