"""The console's rule editor: conditions rows with a live preview, exceptions, the mass-removal
confirmation, the group page showing the rule, the member editor refusing, and the outbox."""

import pytest

from apps.directory.models import Membership
from apps.directory.rules.services import group_rule_save
from apps.provisioning.models import ObjectType, OutboxEvent
from tests.console.test_users import assign, make_connector
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


def members(group) -> set[str]:
    return set(Membership.objects.filter(group=group).values_list("user__username", flat=True))


def rule_post(rows, *, match="all", include="", exclude="", confirm=False, blank_rows=1) -> dict:
    data = {"match": match, "include": include, "exclude": exclude}
    rows = [*rows, *([("", "", "")] * blank_rows)]
    data.update(
        {"c-TOTAL_FORMS": str(len(rows)), "c-INITIAL_FORMS": "0", "c-MIN_NUM_FORMS": "0", "c-MAX_NUM_FORMS": "60"}
    )
    for index, (attribute, op, value) in enumerate(rows):
        data.update({f"c-{index}-attribute": attribute, f"c-{index}-op": op, f"c-{index}-value": value})
    if confirm:
        data["confirm_removals"] = "on"
    return data


@pytest.fixture
def people(db):
    return {
        name: UserFactory(username=name, email=f"{name}@{domain}.example.com")
        for name, domain in (("ann", "eng"), ("bob", "eng"), ("cid", "sales"), ("dan", "eng"))
    }


def test_editor_previews_then_saves_and_the_group_page_shows_the_rule(admin_client, people):
    group = GroupFactory(name="Engineering", members=[people["cid"]])
    page = admin_client.get(f"/console/groups/{group.pk}/rule/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Make Engineering rule-based" in html and '<option value="department">Department</option>' in html
    assert f'hx-post="/console/groups/{group.pk}/rule/preview/"' in html

    rows = [("email", "ew", "@eng.example.com"), ("status", "in", "active, staged")]
    preview = admin_client.post(f"/console/groups/{group.pk}/rule/preview/", rule_post(rows, exclude="dan"))
    text = " ".join(preview.content.decode().split())
    assert (
        "This rule matches <strong>2</strong> users; <strong>2</strong> would be added, <strong>1</strong> removed."
        in text
    )
    assert "Added: ann, bob." in text and "Removed: cid." in text
    assert members(group) == {"cid"}

    saved = admin_client.post(f"/console/groups/{group.pk}/rule/", rule_post(rows, exclude="dan"))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert members(group) == {"ann", "bob"}
    detail = " ".join(admin_client.get(f"/console/groups/{group.pk}/").content.decode().split())
    assert "Rule-based" in detail
    assert (
        "all of: <code>email ew &quot;@eng.example.com&quot; and "
        "status in [&quot;active&quot;, &quot;staged&quot;]</code>" in detail
    )
    assert "Find people to add" not in detail and "Import members" not in detail and "Edit rule" in detail
    assert "Rule-based" in admin_client.get("/console/groups/").content.decode()
    # The editor opens on the saved rule.
    again = admin_client.get(f"/console/groups/{group.pk}/rule/").content.decode()
    assert 'value="@eng.example.com"' in again and "dan</textarea>" in again


def test_bad_conditions_and_unknown_exceptions_are_form_errors(admin_client, people):
    group = GroupFactory(name="Engineering")
    response = admin_client.post(
        f"/console/groups/{group.pk}/rule/", rule_post([("status", "co", "act"), ("", "eq", "x")], include="nobody")
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "Condition 1: co (contains) does not apply to status" in text
    assert "Condition 2: unknown attribute" in text
    assert "No such user: nobody." in text
    preview = admin_client.post(f"/console/groups/{group.pk}/rule/preview/", rule_post([("status", "gt", "x")]))
    assert "does not apply to status" in preview.content.decode()
    assert members(group) == set()


def test_mass_removal_asks_for_confirmation(admin_client, people, settings):
    settings.GROUP_RULE_CONFIRM_REMOVALS = 1
    group = GroupFactory(name="Engineering")
    group_rule_save(
        actor=None,
        group=group,
        match="all",
        conditions=[{"attribute": "email", "op": "ew", "value": "@eng.example.com"}],
    )
    sales = [("email", "ew", "@sales.example.com")]
    asked = admin_client.post(f"/console/groups/{group.pk}/rule/", rule_post(sales))
    assert asked.status_code == 400
    text = " ".join(asked.content.decode().split())
    assert "Saving removes <strong>3</strong> members at once (more than 1)" in text
    assert "Yes, remove these members" in text
    assert members(group) == {"ann", "bob", "dan"}
    done = admin_client.post(f"/console/groups/{group.pk}/rule/", rule_post(sales, confirm=True))
    assert done.status_code == 302
    assert members(group) == {"cid"}


def test_member_editor_and_csv_import_refuse_on_a_rule_based_group(admin_client, people):
    group = GroupFactory(name="Engineering")
    group_rule_save(
        actor=None,
        group=group,
        match="all",
        conditions=[{"attribute": "email", "op": "ew", "value": "@eng.example.com"}],
    )
    response = admin_client.post(f"/console/groups/{group.pk}/members/add/", {"user": people["cid"].pk}, follow=True)
    assert "Engineering is a rule-based group" in response.content.decode()
    response = admin_client.post(f"/console/groups/{group.pk}/members/remove/", {"user": people["ann"].pk}, follow=True)
    assert "Engineering is a rule-based group" in response.content.decode()
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("m.csv", b"cid\n", content_type="text/csv")
    response = admin_client.post(f"/console/groups/{group.pk}/members/import/", {"file": upload})
    assert response.status_code == 400 and "Engineering is a rule-based group" in response.content.decode()
    assert members(group) == {"ann", "bob", "dan"}


def test_rule_membership_reaches_the_outbox_and_stopping_the_rule_keeps_members(admin_client, people):
    group = GroupFactory(name="Engineering")
    connector = make_connector("Twingate")
    assign(connector, group=group)
    OutboxEvent.objects.all().delete()
    admin_client.post(f"/console/groups/{group.pk}/rule/", rule_post([("email", "ew", "@eng.example.com")]))
    users = set(
        OutboxEvent.objects.filter(connector=connector, object_type=ObjectType.USER).values_list("object_id", flat=True)
    )
    assert users == {people[name].pk for name in ("ann", "bob", "dan")}
    assert OutboxEvent.objects.filter(
        connector=connector, object_type=ObjectType.GROUP, object_id=group.pk, reason="group.rule"
    ).exists()
    # A user edited in the console leaves the group and the connector hears of it.
    OutboxEvent.objects.all().delete()
    edit = admin_client.get(f"/console/users/{people['bob'].pk}/edit/")
    assert edit.status_code == 200
    data = {key: value for key, value in edit.context["form"].initial.items() if value is not None}
    data["email"] = "bob@sales.example.com"
    response = admin_client.post(f"/console/users/{people['bob'].pk}/edit/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert members(group) == {"ann", "dan"}
    assert OutboxEvent.objects.filter(connector=connector, object_type=ObjectType.GROUP, reason="group.rule").exists()
    admin_client.post(f"/console/groups/{group.pk}/rule/remove/")
    assert members(group) == {"ann", "dan"}
    assert "Find people to add" in admin_client.get(f"/console/groups/{group.pk}/").content.decode()
