"""Rule-based groups through the directory's services: validation, set-wise derivation, re-evaluation
on each user change, exceptions, audit with the rule as cause, and the mass-removal confirmation."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.directory import services
from apps.directory.models import Membership
from apps.directory.rules.conditions import parse_rule
from apps.directory.rules.selectors import group_rule, group_rule_preview
from apps.directory.rules.services import (
    RemovalConfirmationRequired,
    RuleBasedMembershipError,
    group_rule_remove,
    group_rule_save,
)
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db

ENGINEERING = [{"attribute": "email", "op": "ew", "value": "@eng.example.com"}]


def members(group) -> set[str]:
    return set(Membership.objects.filter(group=group).values_list("user__username", flat=True))


def test_parse_rule_names_each_bad_condition():
    with pytest.raises(ValidationError) as caught:
        parse_rule(
            "all",
            [
                {"attribute": "department_x", "op": "eq", "value": "x"},
                {"attribute": "status", "op": "co", "value": "act"},
                {"attribute": "status", "op": "eq", "value": "gone"},
                {"attribute": "username", "op": "in", "value": "alice"},
                {"attribute": "email", "op": "eq", "value": 3},
                {"attribute": "email", "op": "zz", "value": "x"},
            ],
        )
    messages = caught.value.message_dict["conditions"]
    assert messages[0].startswith("Condition 1: unknown attribute 'department_x'")
    assert "Condition 2: co (contains) does not apply to status, a enum" in messages[1]
    assert "Condition 3: 'gone' is not a status" in messages[2]
    assert messages[3] == "Condition 4: in needs a list of values."
    assert messages[4] == "Condition 5: email is text: give its value as a string."
    assert messages[5].startswith("Condition 6: unknown operator 'zz'")
    with pytest.raises(ValidationError) as caught:
        parse_rule("some", [])
    assert set(caught.value.message_dict) == {"match", "conditions"}


def test_python_evaluation_agrees_with_sql():
    users = [
        UserFactory(username="ann", email="ann@eng.example.com", first_name="Ann", display_name="VP Ann"),
        UserFactory(username="bob", email="BOB@Eng.Example.com", first_name="Bob", employee_id=""),
        UserFactory(username="cid", email="cid@sales.example.com", first_name="", status="suspended"),
    ]
    cases = [
        ("all", [{"attribute": "email", "op": "ew", "value": "@ENG.example.com"}]),
        ("all", [{"attribute": "display_name", "op": "sw", "value": "vp"}]),
        ("all", [{"attribute": "first_name", "op": "pr"}]),
        ("all", [{"attribute": "employee_id", "op": "pr"}]),
        ("all", [{"attribute": "username", "op": "in", "value": ["ANN", "cid"]}]),
        ("all", [{"attribute": "username", "op": "ne", "value": "ann"}]),
        ("all", [{"attribute": "email", "op": "co", "value": "sales"}]),
        (
            "any",
            [
                {"attribute": "status", "op": "eq", "value": "suspended"},
                {"attribute": "username", "op": "eq", "value": "bob"},
            ],
        ),
        ("all", [{"attribute": "status", "op": "eq", "value": "active"}, {"attribute": "first_name", "op": "pr"}]),
    ]
    from apps.directory.models import User

    for match, conditions in cases:
        rule = parse_rule(match, conditions)
        in_sql = set(User.objects.filter(rule.to_q(), pk__in=[u.pk for u in users]).values_list("username", flat=True))
        in_python = {user.username for user in User.objects.filter(pk__in=[u.pk for u in users]) if rule.matches(user)}
        assert in_sql == in_python, (rule.describe(), in_sql, in_python)


def test_rule_save_derives_members_and_audits_each_with_the_rule_as_cause(admin_user):
    ann = UserFactory(username="ann", email="ann@eng.example.com")
    UserFactory(username="bob", email="bob@eng.example.com")
    UserFactory(username="cid", email="cid@sales.example.com")
    group = GroupFactory(name="Engineering", members=[ann])
    result = group_rule_save(actor=admin_user, group=group, match="all", conditions=ENGINEERING)
    assert (result.added, result.removed) == (1, 0)
    assert members(group) == {"ann", "bob"}
    added = AuditEvent.objects.get(action="group.rule.member_add")
    assert added.target_label == "bob" and added.actor == admin_user
    assert added.after["cause"] == {
        "group": {"id": str(group.pk), "name": "Engineering"},
        "rule": 'email ew "@eng.example.com"',
        "trigger": "group.rule.set",
    }
    summary = AuditEvent.objects.get(action="group.rule.set")
    assert (
        summary.before is None
        and summary.after["added"] == 1
        and summary.after["rule"] == 'email ew "@eng.example.com"'
    )
    stored = group_rule(group)
    assert stored.description == 'email ew "@eng.example.com"' and stored.include == [] and stored.exclude == []


def test_user_changes_move_the_user_in_and_out(admin_user):
    group = GroupFactory(name="Engineering")
    group_rule_save(
        actor=admin_user,
        group=group,
        match="all",
        conditions=[*ENGINEERING, {"attribute": "status", "op": "eq", "value": "active"}],
    )
    dan = UserFactory(username="dan", email="dan@eng.example.com")  # created matching
    assert members(group) == {"dan"}
    services.user_suspend(actor=admin_user, user=dan)
    assert members(group) == set()
    services.user_reactivate(actor=admin_user, user=dan)
    assert members(group) == {"dan"}
    services.user_update(actor=admin_user, user=dan, email="dan@sales.example.com")
    assert members(group) == set()
    causes = list(
        AuditEvent.objects.filter(action__startswith="group.rule.member", target_label="dan")
        .order_by("created", "id")
        .values_list("action", "after__cause__trigger", "before__cause__trigger")
    )
    assert causes == [
        ("group.rule.member_add", "user.create", None),
        ("group.rule.member_remove", None, "user.suspend"),
        ("group.rule.member_add", "user.reactivate", None),
        ("group.rule.member_remove", None, "user.update"),
    ]


def test_a_change_of_an_attribute_no_rule_reads_evaluates_nothing(admin_user):
    group = GroupFactory(name="Engineering")
    group_rule_save(actor=admin_user, group=group, match="all", conditions=ENGINEERING)
    eve = UserFactory(username="eve", email="eve@eng.example.com")
    with CaptureQueriesContext(connection) as queries:
        services.user_update(actor=admin_user, user=eve, first_name="Evelyn")
    assert not any("directory_membership" in query["sql"] for query in queries.captured_queries)
    assert members(group) == {"eve"}


def test_exceptions_include_and_exclude(admin_user):
    ann = UserFactory(username="ann", email="ann@eng.example.com")
    bob = UserFactory(username="bob", email="bob@eng.example.com")
    cid = UserFactory(username="cid", email="cid@sales.example.com")
    group = GroupFactory(name="Engineering")
    group_rule_save(actor=admin_user, group=group, match="all", conditions=ENGINEERING, include=[cid], exclude=[bob])
    assert members(group) == {"ann", "cid"}
    # Exceptions hold through user changes too.
    services.user_update(actor=admin_user, user=bob, email="bob2@eng.example.com")
    services.user_update(actor=admin_user, user=cid, email="cid2@sales.example.com")
    assert members(group) == {"ann", "cid"}
    stored = group_rule(group)
    assert [user.username for user in stored.include] == ["cid"] and [u.username for u in stored.exclude] == ["bob"]
    with pytest.raises(ValidationError) as caught:
        group_rule_save(
            actor=admin_user, group=group, match="all", conditions=ENGINEERING, include=[ann], exclude=[ann]
        )
    assert "ann cannot be both included and excluded." in caught.value.message_dict["exclude"]


def test_manual_membership_changes_are_refused_on_a_rule_based_group(admin_user):
    ann = UserFactory(username="ann", email="ann@sales.example.com")
    group = GroupFactory(name="Engineering")
    group_rule_save(actor=admin_user, group=group, match="all", conditions=ENGINEERING)
    for change in (services.group_add_members, services.group_remove_members, services.group_set_members):
        with pytest.raises(RuleBasedMembershipError) as caught:
            change(actor=admin_user, group=group, users=[ann])
        assert caught.value.code == "rule_based_group"
        assert "Engineering is a rule-based group" in caught.value.message
    group_rule_remove(actor=admin_user, group=group)
    services.group_add_members(actor=admin_user, group=group, users=[ann])
    assert members(group) == {"ann"}
    assert AuditEvent.objects.filter(action="group.rule.remove").count() == 1


def test_mass_removal_needs_confirmation(admin_user, settings):
    settings.GROUP_RULE_CONFIRM_REMOVALS = 2
    for n in range(3):
        UserFactory(username=f"eng{n}", email=f"eng{n}@eng.example.com")
    group = GroupFactory(name="Engineering")
    group_rule_save(actor=admin_user, group=group, match="all", conditions=ENGINEERING)
    sales = [{"attribute": "email", "op": "ew", "value": "@sales.example.com"}]
    preview = group_rule_preview(group, match="all", conditions=sales)
    assert (preview.matches, preview.added, preview.removed, preview.needs_confirmation) == (0, 0, 3, True)
    assert preview.removed_sample == ["eng0", "eng1", "eng2"]
    with pytest.raises(RemovalConfirmationRequired) as caught:
        group_rule_save(actor=admin_user, group=group, match="all", conditions=sales)
    assert caught.value.extra == {"removals": 3, "threshold": 2}
    assert len(members(group)) == 3  # nothing written
    group_rule_save(actor=admin_user, group=group, match="all", conditions=sales, confirm_removals=True)
    assert members(group) == set()
    assert AuditEvent.objects.filter(action="group.rule.member_remove").count() == 3


def test_preview_counts_and_samples(admin_user):
    for name in ("ann", "bob", "cid"):
        UserFactory(username=name, email=f"{name}@eng.example.com")
    other = UserFactory(username="zed", email="zed@sales.example.com")
    group = GroupFactory(name="Engineering", members=[other])
    preview = group_rule_preview(group, match="all", conditions=ENGINEERING)
    assert preview.as_dict() == {
        "rule": 'email ew "@eng.example.com"',
        "matches": 3,
        "added": 3,
        "removed": 1,
        "added_sample": ["ann", "bob", "cid"],
        "removed_sample": ["zed"],
        "confirmation_required": False,
        "removal_threshold": 25,
    }
    assert members(group) == {"zed"}


def test_profile_and_custom_attributes(admin_user):
    from apps.directory.models import CustomAttribute, User

    CustomAttribute.objects.create(name="band", label="Band", type="number")
    CustomAttribute.objects.create(name="skills", label="Skills", type="string", multi_valued=True)
    CustomAttribute.objects.create(name="start", label="Start", type="date")
    rows = {
        "ann": {
            "department": "Engineering",
            "title": "VP Engineering",
            "custom_attributes": {"band": 7, "skills": ["Go", "SQL"], "start": "2020-01-02"},
        },
        "bob": {
            "department": "engineering",
            "title": "Engineer",
            "custom_attributes": {"band": 3, "skills": ["python"]},
        },
        "cid": {"department": "Sales", "title": "", "custom_attributes": {}},
    }
    users = {}
    for name, values in rows.items():
        users[name] = UserFactory(username=name)
        User.objects.filter(pk=users[name].pk).update(**values)
    cases = {
        ("all", (("department", "eq", "ENGINEERING"),)): {"ann", "bob"},
        ("all", (("title", "sw", "vp"),)): {"ann"},
        ("all", (("title", "pr", None),)): {"ann", "bob"},
        ("all", (("custom.band", "gt", 5),)): {"ann"},
        ("all", (("custom.band", "le", 3),)): {"bob"},
        ("all", (("custom.band", "pr", None),)): {"ann", "bob"},
        ("all", (("custom.skills", "eq", "sql"),)): {"ann"},
        ("all", (("custom.skills", "in", ("python", "rust")),)): {"bob"},
        ("all", (("custom.skills", "ne", "go"),)): {"bob", "cid"},
        ("all", (("custom.start", "lt", "2021-01-01"),)): {"ann"},
        ("any", (("department", "eq", "sales"), ("custom.band", "eq", 3))): {"bob", "cid"},
    }
    ids = [user.pk for user in users.values()]
    for (match, conditions), expected in cases.items():
        documents = [
            {"attribute": a, "op": o, **({} if v is None else {"value": list(v) if isinstance(v, tuple) else v})}
            for a, o, v in conditions
        ]
        rule = parse_rule(match, documents)
        in_sql = set(User.objects.filter(rule.to_q(), pk__in=ids).values_list("username", flat=True))
        in_python = {user.username for user in User.objects.filter(pk__in=ids) if rule.matches(user)}
        assert in_sql == expected, (rule.describe(), in_sql)
        assert in_python == expected, (rule.describe(), in_python)
    with pytest.raises(ValidationError) as caught:
        parse_rule(
            "all",
            [
                {"attribute": "custom.skills", "op": "sw", "value": "G"},
                {"attribute": "custom.band", "op": "gt", "value": "x"},
            ],
        )
    assert caught.value.message_dict["conditions"] == [
        "Condition 1: sw (starts with) does not apply to custom.skills, a list of string; use one of eq, ne, in, pr.",
        "Condition 2: 'x' is not a number.",
    ]


def test_manager_condition(admin_user):
    from apps.directory.models import User

    boss = UserFactory(username="boss")
    ann = UserFactory(username="ann")
    UserFactory(username="bob")
    User.objects.filter(pk=ann.pk).update(manager=boss)
    rule = parse_rule("all", [{"attribute": "manager", "op": "eq", "value": str(boss.pk).upper()}])
    assert set(User.objects.filter(rule.to_q()).values_list("username", flat=True)) == {"ann"}
    assert [user.username for user in User.objects.all() if rule.matches(user)] == ["ann"]
    with pytest.raises(ValidationError, match="manager is a user: give the user's id"):
        parse_rule("all", [{"attribute": "manager", "op": "eq", "value": "boss"}])


def test_bulk_attribute_changes_re_derive_the_rules_reading_them(admin_user):
    from apps.common.errors import ConflictError
    from apps.directory.custom_attributes import (
        custom_attribute_create,
        custom_attribute_delete,
        custom_attribute_update,
    )
    from apps.directory.models import User

    band = custom_attribute_create(actor=admin_user, name="band", label="Band", type="string")
    boss = UserFactory(username="boss")
    ann = UserFactory(username="ann")
    User.objects.filter(pk=ann.pk).update(manager=boss, custom_attributes={"band": "7"})
    reports = GroupFactory(name="Boss's reports")
    group_rule_save(actor=admin_user, group=reports, match="all", conditions=[{"attribute": "manager", "op": "pr"}])
    senior = GroupFactory(name="Senior")
    group_rule_save(
        actor=admin_user, group=senior, match="all", conditions=[{"attribute": "custom.band", "op": "eq", "value": "7"}]
    )
    assert members(reports) == {"ann"} and members(senior) == {"ann"}
    services.user_delete(actor=admin_user, user=boss)
    assert members(reports) == set()
    # A type change the rule's value still fits re-derives; one it does not fit is refused.
    custom_attribute_update(actor=admin_user, definition=band, type="number")
    assert User.objects.get(pk=ann.pk).custom_attributes == {"band": 7}
    group_rule_save(
        actor=admin_user, group=senior, match="all", conditions=[{"attribute": "custom.band", "op": "gt", "value": 5}]
    )
    assert members(senior) == {"ann"}
    with pytest.raises(ValidationError, match="The rule of Senior would no longer apply"):
        custom_attribute_update(actor=admin_user, definition=band, type="string")
    with pytest.raises(ConflictError, match=r"custom.band is read by the rule of Senior"):
        custom_attribute_delete(actor=admin_user, definition=band)
    group_rule_remove(actor=admin_user, group=senior)
    custom_attribute_delete(actor=admin_user, definition=band)


def test_user_csv_import_and_profile_writes_re_evaluate(admin_user):
    from apps.directory.custom_attributes import custom_attribute_create
    from apps.directory.user_csv import user_csv_import

    custom_attribute_create(actor=admin_user, name="badge", type="number")
    existing = services.user_create(actor=admin_user, username="existing", department="Sales")
    rnd = GroupFactory(name="R&D")
    group_rule_save(
        actor=admin_user,
        group=rnd,
        match="any",
        conditions=[
            {"attribute": "department", "op": "eq", "value": "r&d"},
            {"attribute": "custom.badge", "op": "ge", "value": 7},
        ],
    )
    assert members(rnd) == set()
    content = (
        b"username,email,department,custom.badge\n"
        b"existing,existing@example.com,R&D,\n"
        b"newbie,newbie@example.com,Ops,9\n"
        b"other,other@example.com,Ops,3\n"
    )
    report = user_csv_import(actor=admin_user, content=content)
    assert (report.created, report.updated, report.refused) == (2, 1, 0), report.errors
    assert members(rnd) == {"existing", "newbie"}
    services.user_update(actor=admin_user, user=existing, department="Sales")
    assert members(rnd) == {"newbie"}
