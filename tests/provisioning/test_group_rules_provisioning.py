"""Rule-based groups downstream: an app assigned the group receives exactly the rule's members and
follows user changes; a confirmed rule change removing many still trips the circuit breaker."""

import pytest

from apps.directory import services as directory
from apps.directory.rules.services import group_rule_save
from apps.provisioning.models import DeprovisionHold, HoldStatus
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.helpers import assign, make_connector, run, sync

pytestmark = pytest.mark.django_db

ENGINEERING = [{"attribute": "email", "op": "ew", "value": "@eng.example.com"}]


def test_the_app_receives_exactly_the_rules_members_and_follows_changes(downstream):
    connector = make_connector(downstream)
    engineers = [UserFactory(username=f"eng{i}", email=f"eng{i}@eng.example.com") for i in range(3)]
    UserFactory(username="sales0", email="sales0@sales.example.com")
    group = GroupFactory(name="Engineering")
    group_rule_save(actor=None, group=group, match="all", conditions=ENGINEERING)
    assign(connector, group=group)
    sync(connector)
    assert {user["userName"] for user in downstream.users} == {"eng0", "eng1", "eng2"}
    assert downstream.member_names("Engineering") == {"eng0", "eng1", "eng2"}

    directory.user_update(actor=None, user=engineers[0], email="eng0@sales.example.com")
    UserFactory(username="eng3", email="eng3@eng.example.com")
    sync(connector)
    assert downstream.member_names("Engineering") == {"eng1", "eng2", "eng3"}
    assert downstream.user("eng0")["active"] is False  # out of scope: deactivated


def test_a_confirmed_mass_removal_is_still_held_by_the_breaker(downstream):
    connector = make_connector(downstream)
    for i in range(11):
        UserFactory(username=f"eng{i:02d}", email=f"eng{i:02d}@eng.example.com")
    group = GroupFactory(name="Engineering")
    group_rule_save(actor=None, group=group, match="all", conditions=ENGINEERING)
    assign(connector, group=group)
    sync(connector)
    downstream.reset_log()

    nobody = [{"attribute": "email", "op": "ew", "value": "@nowhere.example.com"}]
    group_rule_save(actor=None, group=group, match="all", conditions=nobody, confirm_removals=True)
    result = run(connector)

    assert result.held
    assert downstream.count() == 0
    hold = DeprovisionHold.objects.get(connector=connector)
    assert hold.status == HoldStatus.PENDING and len(hold.labels) == 11


def test_one_user_moved_between_rule_groups_is_recorded_for_the_assigned_ones_only(downstream):
    from apps.provisioning.models import ObjectType, OutboxEvent

    connector = make_connector(downstream)
    ann = UserFactory(username="ann", email="ann@eng.example.com")
    groups = {}
    for name, domain in (("Engineering", "eng"), ("Sales", "sales"), ("Unassigned", "sales")):
        groups[name] = GroupFactory(name=name)
        rule = [{"attribute": "email", "op": "ew", "value": f"@{domain}.example.com"}]
        group_rule_save(actor=None, group=groups[name], match="all", conditions=rule)
    assign(connector, group=groups["Engineering"])
    assign(connector, group=groups["Sales"])
    OutboxEvent.objects.all().delete()

    directory.user_update(actor=None, user=ann, email="ann@sales.example.com")

    events = set(OutboxEvent.objects.filter(connector=connector).values_list("object_type", "object_id", "reason"))
    assert {
        (ObjectType.GROUP, groups["Engineering"].pk, "group.rule"),
        (ObjectType.GROUP, groups["Sales"].pk, "group.rule"),
        (ObjectType.USER, ann.pk, "group.rule"),
    } <= events
    assert not any(object_id == groups["Unassigned"].pk for _, object_id, _ in events)
