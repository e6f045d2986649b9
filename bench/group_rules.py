"""Group rules at 100,000 users and 1,000 rules: the re-evaluation that one user's change sets off,
and a rule change that re-derives a 50,000-member group.

    .venv/bin/python bench/group_rules.py                          # 100,000 users, 1,000 rules: PostgreSQL, then SQLite
    .venv/bin/python bench/group_rules.py --only postgresql        # one backend
    .venv/bin/python bench/group_rules.py --users 20000 --rules 200   # smaller

Each backend runs in its own subprocess (`idp_portal.settings`, DEBUG off, migrated): PostgreSQL in
`idp_portal_bench_group_rules` on 127.0.0.1:5432 (dropped and created here, dropped again at the
end; skipped when the server cannot be reached), SQLite in a temporary file. Users are
bulk-inserted (one precomputed unusable password, no hashing) with a department (one of 200),
title, a division (half "North"), a numeric custom attribute `band` and a multi-valued `skills`;
1,000 rule-based groups are bulk-inserted with rules of five shapes (department eq; department and
status; title sw; band gt and department; skills in; any of email ew / employee_id sw), so a change
of department is read by 600 rules (about three of them name each department). A SCIM connector
with provisioning on is assigned the 50,000-member group, so its outbox hears of every membership change. Then ANALYZE.

Printed:
- one user's change, through `apps.directory.services.user_update` (its UPDATE, audit row,
  announcement and the rule re-evaluation, one transaction each), for 300 users: a change of
  department (600 rules read it; the user leaves and joins a few groups) and of title (200). The baseline,
  in the same run, is the same service changing an attribute no rule reads (nick_name), so the
  difference is what the rules cost. Median and p99; the goal is on the median and p99 of the whole
  call.
- the rule change: `group_rule_save` making a manual, empty group rule-based with `division eq
  "North"` (50,000 members added), then changing it to `division eq "South"` (50,000 removed, 50,000
  added; confirmed): time, SQL statements, audit rows and outbox events written.
It prints and never asserts: a missed goal is MISS.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_DATABASE = "idp_portal_bench_group_rules"
BATCH = 5000
SAMPLES = 300
# 200 departments and 72 titles: about three rules test each value, as in a directory whose rules
# each name a team.
DEPARTMENTS = [f"Department {index:03d}" for index in range(200)]
LEVELS = ["Engineer", "Senior Engineer", "Manager", "Director", "VP", "Analyst"]
AREAS = ["Sales", "Platform", "Data", "Security", "Finance", "Legal", "Design", "Mobile", "Web", "Infra", "HR", "Ops"]
TITLES = [f"{level} {area}" for level in LEVELS for area in AREAS]
SKILLS = ["go", "python", "sql", "rust", "java", "excel", "figma", "k8s"]
GOALS = {"change_median_ms": 20.0, "change_p99_ms": 100.0, "rederive_s": 30.0}


# --- Parent: one subprocess per backend, then the figures --------------------------------------


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


def _run_child(database_url: str, users: int, rules: int, var_dir: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.update(
        DJANGO_SETTINGS_MODULE="idp_portal.settings",
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY="bench-only-not-secret",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="ERROR",
        # The connector's app is never contacted (no worker runs); its URL only has to be accepted.
        OUTBOUND_ALLOW_LOOPBACK="true",
        IDP_VAR_DIR=var_dir,
        STATIC_ROOT=os.path.join(var_dir, "static"),
    )
    env.pop("REDIS_URL", None)  # Celery's filesystem broker under var_dir: nothing shared is touched
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--users", str(users), "--rules", str(rules)]
    output = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    if output.returncode != 0:
        sys.stderr.write(output.stderr[-4000:])
        raise SystemExit(f"the benchmark process for {database_url.split(':')[0]} failed")
    return json.loads(output.stdout.strip().splitlines()[-1])


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _report(backend: str, result: dict) -> None:
    print(
        f"\n{backend}: {result['users']:,} users, {result['rules']:,} rules "
        f"(setup {result['setup_s']:.0f} s; {SAMPLES} changes each; load average "
        f"{result['load'][0]:.1f} at the start of the measures, {result['load'][1]:.1f} at the end, "
        f"on {os.cpu_count()} CPUs)"
    )
    print(
        f"  {'one user change':<44}{'call median':>12}{'p99':>8}{'re-eval median':>15}{'p99':>8}"
        f"{'rules read':>11}{'joins+leaves':>13}  goal (re-evaluation)"
    )
    for name, row in result["changes"].items():
        verdict = ""
        if row["rules_read"]:
            ok = row["eval_median_ms"] <= GOALS["change_median_ms"] and row["eval_p99_ms"] <= GOALS["change_p99_ms"]
            verdict = (
                f"{_verdict(ok)} (< {GOALS['change_median_ms']:.0f} ms median, < {GOALS['change_p99_ms']:.0f} ms p99)"
            )
        print(
            f"  {name:<44}{row['median_ms']:>12.2f}{row['p99_ms']:>8.2f}{row['eval_median_ms']:>15.2f}"
            f"{row['eval_p99_ms']:>8.2f}{row['rules_read']:>11}{row['membership_changes']:>13}  {verdict}"
        )
    print("  (call: the whole user_update; the baseline row is the same call when no rule reads what changed)")
    print(
        f"  {'rule change (group_rule_save)':<44}{'s':>10}{'SQL':>9}{'members':>11}{'audit rows':>13}"
        f"{'outbox':>9}  goal"
    )
    for name, row in result["rederive"].items():
        print(
            f"  {name:<44}{row['seconds']:>10.2f}{row['statements']:>9}{row['changed']:>11,}{row['audit_rows']:>13,}"
            f"{row['outbox_events']:>9,}  {_verdict(row['seconds'] <= GOALS['rederive_s'])} "
            f"(< {GOALS['rederive_s']:.0f} s)"
        )
    print(f"  group members after: {result['members_after']:,} (expected {result['expected_after']:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_Child(args.users, args.rules).measure()))
        return
    with tempfile.TemporaryDirectory(prefix="group-rules-") as scratch:
        if args.only in (None, "postgresql"):
            if not _pg_reachable():
                print(f"\nPostgreSQL: not reachable at {PG_SERVER}, skipped")
            else:
                _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
                _pg_admin(f'CREATE DATABASE "{PG_DATABASE}"')
                try:
                    _report("PostgreSQL", _run_child(f"{PG_SERVER}/{PG_DATABASE}", args.users, args.rules, scratch))
                finally:
                    _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        if args.only in (None, "sqlite"):
            _report("SQLite", _run_child(f"sqlite:///{scratch}/bench.sqlite3", args.users, args.rules, scratch))


# --- Child: load, then measure ------------------------------------------------------------------


def _rule_for(index: int) -> tuple[str, list[dict]]:
    """Five shapes of rule, as an HR-fed directory would have them."""
    department = DEPARTMENTS[index % len(DEPARTMENTS)]
    shape = index % 10
    if shape < 3:
        return "all", [{"attribute": "department", "op": "eq", "value": department}]
    if shape < 5:
        return "all", [
            {"attribute": "department", "op": "eq", "value": department},
            {"attribute": "status", "op": "eq", "value": "active"},
        ]
    if shape < 7:
        return "all", [{"attribute": "title", "op": "sw", "value": TITLES[index % len(TITLES)]}]
    if shape < 8:
        return "all", [
            {"attribute": "custom.band", "op": "gt", "value": index % 9},
            {"attribute": "department", "op": "eq", "value": department},
        ]
    if shape < 9:
        return "all", [{"attribute": "custom.skills", "op": "in", "value": SKILLS[index % 8 : index % 8 + 2]}]
    return "any", [
        {"attribute": "email", "op": "ew", "value": f"@d{index % 25}.example.com"},
        {"attribute": "employee_id", "op": "sw", "value": f"E{index % 10}"},
    ]


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class _Child:
    def __init__(self, users: int, rules: int) -> None:
        import django

        django.setup()
        self.users = users
        self.rules = rules

    def _load(self) -> None:
        from django.contrib.auth.hashers import make_password
        from django.core.management import call_command
        from django.db import connection, transaction

        from apps.connectors import services as connector_services
        from apps.connectors.models import Assignment
        from apps.directory.models import (
            CustomAttribute,
            Group,
            GroupRule,
            GroupRuleAttribute,
            User,
            UserStatus,
        )
        from apps.directory.rules.conditions import parse_rule

        call_command("migrate", verbosity=0)
        CustomAttribute.objects.create(name="band", label="Band", type="number")
        CustomAttribute.objects.create(name="skills", label="Skills", type="string", multi_valued=True)
        unusable = make_password(None)
        rng = random.Random(17)
        for start in range(0, self.users, BATCH):
            with transaction.atomic():
                batch = []
                for index in range(start, min(start + BATCH, self.users)):
                    status = UserStatus.SUSPENDED if index % 100 < 7 else UserStatus.ACTIVE
                    batch.append(
                        User(
                            username=f"user{index:06d}",
                            email=f"user{index:06d}@d{index % 25}.example.com",
                            first_name=f"Given{index % 997}",
                            last_name=f"Surname{index % 101}",
                            display_name=f"Given{index % 997} Surname{index % 101}",
                            employee_id=f"E{index:06d}",
                            status=status,
                            password=unusable,
                            department=DEPARTMENTS[rng.randrange(len(DEPARTMENTS))],
                            title=TITLES[rng.randrange(len(TITLES))],
                            division="North" if index % 2 else "South",
                            custom_attributes={"band": rng.randrange(10), "skills": rng.sample(SKILLS, 2)},
                        )
                    )
                User.objects.bulk_create(batch)
        # Rule-based groups, inserted in bulk: their members are derived per sampled user below.
        groups = Group.objects.bulk_create([Group(name=f"rule-{index:04d}") for index in range(self.rules)])
        stored, reads = [], []
        for index, group in enumerate(groups):
            match, conditions = _rule_for(index)
            rule = parse_rule(match, conditions)
            stored.append(GroupRule(group=group, match=match, conditions=rule.conditions_json()))
            reads += [GroupRuleAttribute(rule_id=group.pk, attribute=name) for name in sorted(rule.attribute_names)]
        GroupRule.objects.bulk_create(stored)
        GroupRuleAttribute.objects.bulk_create(reads, batch_size=2000)
        self.big_group = Group.objects.create(name="North and South")
        connector = connector_services.connector_create(
            actor=None,
            template="generic-scim",
            name="Bench App",
            enabled=True,
            provisioning={
                "enabled": True,
                "base_url": "http://127.0.0.1:9/scim/v2",
                "token": "bench-bearer-token",
                "operations": ["create_users", "update_users", "deactivate_users", "delete_users", "push_groups"],
            },
        )
        Assignment.objects.create(connector=connector, group=self.big_group)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    def _changes(self) -> dict:
        from django.db.models import Count

        from apps.audit.models import AuditEvent
        from apps.directory import services
        from apps.directory.models import GroupRuleAttribute, User
        from apps.directory.rules.engine import reevaluate_user

        rng = random.Random(42)
        sample_ids = rng.sample(list(User.objects.values_list("pk", flat=True)), SAMPLES)
        users = {user.pk: user for user in User.objects.filter(pk__in=sample_ids)}
        # Their memberships as the rules have them now (untimed), so each change is a steady-state one.
        for user in users.values():
            reevaluate_user(actor=None, user=user, attributes=None, trigger="bench")
        create_timings = []
        for user in list(users.values())[:50]:  # a new user: every rule is read
            started = time.perf_counter()
            reevaluate_user(actor=None, user=user, attributes=None, trigger="bench")
            create_timings.append(time.perf_counter() - started)
        reads = dict(GroupRuleAttribute.objects.values_list("attribute").annotate(n=Count("id")).order_by())
        scenarios = {
            "baseline: nick_name (no rule reads it)": ("nick_name", lambda n: f"nick{n}"),
            "department (the user moves)": ("department", lambda n: DEPARTMENTS[(n * 7) % len(DEPARTMENTS)]),
            "title": ("title", lambda n: TITLES[(n * 3) % len(TITLES)]),
        }
        # The re-evaluation's own share of each call, timed around the service's call of it.
        evaluation: list[float] = []

        def timed_reevaluation(**arguments) -> None:
            started = time.perf_counter()
            reevaluate_user(**arguments)
            evaluation.append(time.perf_counter() - started)

        services.reevaluate_user = timed_reevaluation
        results = {}
        for name, (field, value_for) in scenarios.items():
            timings = []
            evaluation.clear()
            before = AuditEvent.objects.filter(action__startswith="group.rule.member").count()
            for number, pk in enumerate(sample_ids):
                user = User.objects.get(pk=pk)
                started = time.perf_counter()
                services.user_update(actor=None, user=user, **{field: value_for(number)})
                timings.append(time.perf_counter() - started)
            after = AuditEvent.objects.filter(action__startswith="group.rule.member").count()
            results[name] = {
                "median_ms": statistics.median(timings) * 1000,
                "p99_ms": _percentile(timings, 0.99) * 1000,
                "eval_median_ms": statistics.median(evaluation) * 1000,
                "eval_p99_ms": _percentile(evaluation, 0.99) * 1000,
                "rules_read": reads.get(field, 0),
                "membership_changes": after - before,
            }
        results["new user: every rule (re-evaluation only)"] = {
            "median_ms": statistics.median(create_timings) * 1000,
            "p99_ms": _percentile(create_timings, 0.99) * 1000,
            "eval_median_ms": statistics.median(create_timings) * 1000,
            "eval_p99_ms": _percentile(create_timings, 0.99) * 1000,
            "rules_read": self.rules,
            "membership_changes": 0,
        }
        return results

    def _rederive(self) -> dict:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from apps.audit.models import AuditEvent
        from apps.directory.rules.services import group_rule_save
        from apps.provisioning.models import OutboxEvent

        results = {}
        steps = (
            ('new rule: division eq "North" (adds)', "North"),
            ('changed: division eq "South" (swaps all)', "South"),
        )
        for name, division in steps:
            audit_before = AuditEvent.objects.count()
            outbox_before = OutboxEvent.objects.count()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                saved = group_rule_save(
                    actor=None,
                    group=self.big_group,
                    match="all",
                    conditions=[{"attribute": "division", "op": "eq", "value": division}],
                    confirm_removals=True,
                )
                seconds = time.perf_counter() - started
            results[name] = {
                "seconds": seconds,
                "statements": len(captured.captured_queries),
                "changed": saved.added + saved.removed,
                "audit_rows": AuditEvent.objects.count() - audit_before,
                "outbox_events": OutboxEvent.objects.count() - outbox_before,
            }
        return results

    def measure(self) -> dict:
        from apps.directory.models import Membership

        started = time.monotonic()
        self._load()
        setup_s = time.monotonic() - started
        load_before = os.getloadavg()[0]
        changes = self._changes()
        rederive = self._rederive()
        return {
            "users": self.users,
            "rules": self.rules,
            "setup_s": setup_s,
            "load": [load_before, os.getloadavg()[0]],
            "changes": changes,
            "rederive": rederive,
            "members_after": Membership.objects.filter(group=self.big_group).count(),
            "expected_after": self.users - self.users // 2,  # even indexes are "South"
        }


if __name__ == "__main__":
    main()
