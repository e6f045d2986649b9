"""The profile: RFC 7643 core and enterprise attributes and custom values through the directory's
services: cleaned, validated on create and update, audited with a diff, announced with the
attribute keys that changed."""

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.directory import changes, services
from apps.directory.custom_attributes import custom_attribute_create
from apps.directory.models import User
from apps.directory.profile import reports_affected
from apps.directory.roles import StaffAccountProtected
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


class Recorder:
    """A real listener of apps.directory.changes, as the provisioning outbox is."""

    def __init__(self) -> None:
        self.user_changes: list[tuple[list, str, frozenset | None]] = []

    def record_user_change(self, user_ids, reason, *, attributes=None) -> None:
        self.user_changes.append(([str(pk) for pk in user_ids], reason, attributes))

    def record_user_deletion(self, user) -> None:
        pass

    def record_group_change(self, group, reason, *, member_ids=()) -> None:
        pass

    def record_group_deletion(self, group) -> None:
        pass


@pytest.fixture
def recorder():
    listener = Recorder()
    changes.listen(listener)
    yield listener
    changes._listeners.remove(listener)


@pytest.fixture
def actor():
    return UserFactory(username="profile.admin", is_staff=True)


FULL_PROFILE = {
    "nick_name": "Babs",
    "title": "Tour Guide",
    "user_type": "Employee",
    "preferred_language": "en-US, fr;q=0.5",
    "locale": "en-US",
    "timezone": "America/Los_Angeles",
    "profile_url": "https://login.example.com/bjensen",
    "emails": [{"value": "babs@Jensen.ORG", "type": "home"}],
    "phone_numbers": [
        {"value": "555-555-5555", "type": "work", "primary": True},
        {"value": "555-555-4444", "type": "mobile"},
    ],
    "addresses": [
        {
            "street_address": "100 Universal City Plaza",
            "locality": "Hollywood",
            "region": "CA",
            "postal_code": "91608",
            "country": "US",
            "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
            "type": "work",
            "primary": True,
        }
    ],
    "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
    "cost_center": "4130",
    "organization": "Universal Studios",
    "division": "Theme Park",
    "department": "Tour Operations",
}


def test_create_keeps_the_whole_profile(actor):
    boss = UserFactory(username="boss", display_name="The Boss")
    user = services.user_create(
        actor=actor, username="bjensen", email="bjensen@example.com", manager=boss.pk, **FULL_PROFILE
    )
    stored = User.objects.get(pk=user.pk)
    for name in ("nick_name", "title", "user_type", "locale", "timezone", "profile_url", "department", "division"):
        assert getattr(stored, name) == FULL_PROFILE[name]
    assert stored.preferred_language == "en-US, fr;q=0.5"
    assert stored.emails == [{"value": "babs@jensen.org", "type": "home", "primary": False}]
    assert stored.phone_numbers[0] == {"value": "555-555-5555", "type": "work", "primary": True}
    assert stored.phone_numbers[1]["primary"] is False
    assert stored.addresses[0]["postal_code"] == "91608"
    assert stored.manager_id == boss.pk
    event = AuditEvent.objects.get(action="user.create", target_id=str(user.pk))
    assert event.after["manager"] == str(boss.pk)
    assert event.after["phone_numbers"][0]["value"] == "555-555-5555"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("timezone", "Mars/Olympus", "IANA"),
        ("locale", "english please", "locale"),
        ("preferred_language", "en-US;q=7", "language"),
        ("profile_url", "javascript:alert(1)", "URL"),
        ("photos", [{"value": "ftp://example.com/x.png"}], "http or https"),
        ("phone_numbers", [{"value": "1", "primary": True}, {"value": "2", "primary": True}], "one item"),
        ("phone_numbers", [{"type": "work"}], "`value` is required"),
        ("phone_numbers", [{"value": "1", "colour": "red"}], "Unknown part"),
        ("phone_numbers", "555", "list"),
        ("emails", [{"value": "not-an-email"}], "valid email"),
        ("emails", [{"value": "x@example.com", "primary": True}], "company email is the primary"),
        ("addresses", [{"type": "work"}], "at least one part"),
        ("manager", "not-a-uuid", "id of a user"),
        ("manager", "6b1a3d7e-4d2c-4c1e-9f55-2a1f0c3b9e10", "No user"),
        ("title", "x" * 300, "at most 255"),
    ],
)
def test_bad_profile_values_are_field_errors(actor, field, value, fragment):
    with pytest.raises(ValidationError) as caught:
        services.user_create(actor=actor, username="bad.one", **{field: value})
    messages = " ".join(caught.value.message_dict[field])
    assert fragment in messages
    assert not User.objects.filter(username="bad.one").exists()


def test_every_problem_is_named_at_once(actor):
    with pytest.raises(ValidationError) as caught:
        services.user_create(actor=actor, username="", timezone="Nowhere", locale="??")
    assert {"username", "timezone", "locale"} <= set(caught.value.message_dict)


def test_manager_cannot_be_self_or_close_a_loop(actor):
    top = UserFactory(username="top")
    middle = UserFactory(username="middle", manager=top.pk)
    bottom = UserFactory(username="bottom", manager=middle)
    with pytest.raises(ValidationError) as caught:
        services.user_update(actor=actor, user=top, manager=bottom.pk)
    assert "loop" in caught.value.message_dict["manager"][0]
    with pytest.raises(ValidationError) as caught:
        services.user_update(actor=actor, user=top, manager=str(top.pk))
    assert "own manager" in caught.value.message_dict["manager"][0]
    top.refresh_from_db()
    assert top.manager_id is None
    services.user_update(actor=actor, user=bottom, manager=top.pk)  # moving down the chain is fine
    assert User.objects.get(pk=bottom.pk).manager_id == top.pk


def test_update_audits_the_diff_and_announces_changed_keys(actor, recorder):
    user = UserFactory(username="mover", title="Engineer", department="R&D")
    recorder.user_changes.clear()
    services.user_update(actor=actor, user=user, title="Staff Engineer", phone_numbers=[{"value": "+1 555"}])
    event = AuditEvent.objects.filter(action="user.update", target_id=str(user.pk)).latest("created")
    assert event.before == {"title": "Engineer", "phone_numbers": []}
    assert event.after == {
        "title": "Staff Engineer",
        "phone_numbers": [{"value": "+1 555", "type": "", "primary": False}],
    }
    assert recorder.user_changes == [([str(user.pk)], "user.update", frozenset({"title", "phone_numbers"}))]


def test_unchanged_profile_writes_nothing(actor, recorder):
    user = UserFactory(username="still", title="Engineer")
    recorder.user_changes.clear()
    services.user_update(actor=actor, user=user, title=" Engineer ")
    assert recorder.user_changes == []
    assert not AuditEvent.objects.filter(action="user.update", target_id=str(user.pk)).exists()


def test_a_managers_new_name_reaches_their_reports_keys(actor, recorder):
    boss = UserFactory(username="boss", first_name="Ann", last_name="Lee")
    report = UserFactory(username="report", manager=boss.pk)
    UserFactory(username="not.a.report")
    recorder.user_changes.clear()
    services.user_update(actor=actor, user=boss, display_name="Ann Lee-Smith")
    [(ids, _reason, attributes)] = recorder.user_changes
    assert reports_affected(ids, attributes) == ([report.pk], {"manager.display_name"})
    assert reports_affected(ids, {"title"}) == ([], set())
    assert reports_affected(ids, None) == ([], set())


def test_deleting_a_manager_clears_their_reports_manager(actor, recorder):
    boss = UserFactory(username="boss")
    reports = [UserFactory(username=f"report{n}", manager=boss.pk) for n in range(2)]
    services.user_delete(actor=actor, user=boss)
    assert set(User.objects.filter(pk__in=[r.pk for r in reports]).values_list("manager_id", flat=True)) == {None}
    event = AuditEvent.objects.get(action="user.delete", target_id=str(boss.pk))
    assert sorted(event.before["reports"]) == sorted(str(r.pk) for r in reports)
    removed = [change for change in recorder.user_changes if change[1] == "user.manager_removed"]
    assert removed and set(removed[0][0]) == {str(r.pk) for r in reports}
    assert removed[0][2] == frozenset({"manager"})


def test_custom_values_are_typed_and_checked(actor, recorder):
    custom_attribute_create(actor=actor, name="badge", type="number")
    custom_attribute_create(actor=actor, name="remote", type="boolean")
    custom_attribute_create(actor=actor, name="start", type="date")
    custom_attribute_create(actor=actor, name="region", type="enum", choices=["EMEA", "AMER", "APAC"])
    custom_attribute_create(actor=actor, name="skills", type="string", multi_valued=True)
    user = services.user_create(
        actor=actor,
        username="typed",
        custom_attributes={
            "badge": "42",
            "REMOTE": "yes",
            "start": "2026-01-05",
            "region": "emea",
            "skills": ["python", "sql", "python"],
        },
    )
    assert User.objects.get(pk=user.pk).custom_attributes == {
        "badge": 42,
        "remote": True,
        "start": "2026-01-05",
        "region": "EMEA",
        "skills": ["python", "sql"],
    }
    recorder.user_changes.clear()
    with pytest.raises(ValidationError) as caught:
        services.user_update(
            actor=actor,
            user=user,
            custom_attributes={"badge": "many", "region": "MARS", "start": "05/01/2026", "nope": 1, "remote": True},
        )
    errors = caught.value.message_dict
    assert set(errors) == {
        "custom_attributes.badge",
        "custom_attributes.region",
        "custom_attributes.start",
        "custom_attributes.nope",
    }
    assert "EMEA, AMER, APAC" in errors["custom_attributes.region"][0]
    services.user_update(actor=actor, user=user, custom_attributes={"badge": 7, "region": "APAC"})
    assert User.objects.get(pk=user.pk).custom_attributes == {"badge": 7, "region": "APAC"}
    assert recorder.user_changes[-1][2] == frozenset(
        {"custom.badge", "custom.region", "custom.remote", "custom.start", "custom.skills"}
    )


def test_required_custom_attribute(actor):
    custom_attribute_create(actor=actor, name="cost_code", type="string", required=True)
    with pytest.raises(ValidationError) as caught:
        services.user_create(actor=actor, username="no.code")
    assert caught.value.message_dict["custom_attributes.cost_code"] == ["This attribute is required."]
    user = services.user_create(actor=actor, username="with.code", custom_attributes={"cost_code": "C1"})
    with pytest.raises(ValidationError):
        services.user_update(actor=actor, user=user, custom_attributes={})
    services.user_update(actor=actor, user=user, title="Still fine")  # other edits need not repeat it


def test_staff_rank_applies_to_profile_edits():
    helpdesk = UserFactory(username="helpdesk", is_staff=True)
    services.user_set_admin_role(actor=None, user=helpdesk, role="helpdesk")
    admin = UserFactory(username="an.admin", is_staff=True)
    with pytest.raises(StaffAccountProtected):
        services.user_update(actor=helpdesk, user=admin, title="Demoted")
    assert User.objects.get(pk=admin.pk).title == ""
