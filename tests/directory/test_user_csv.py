"""Users as CSV: the export covers every attribute (custom ones as custom.<name> columns), the
import creates and updates through the directory's services, refused rows are listed by line."""

import csv
import io

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.directory import services
from apps.directory.custom_attributes import custom_attribute_create
from apps.directory.models import User
from apps.directory.user_csv import parse_items, user_csv_import, user_csv_lines
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor():
    return UserFactory(username="csv.admin", is_staff=True)


def _export(users=None) -> str:
    return "".join(user_csv_lines(users if users is not None else User.objects.all()))


def _rows(text: str) -> dict[str, dict[str, str]]:
    return {row["username"]: row for row in csv.DictReader(io.StringIO(text))}


def test_export_has_every_attribute_and_imports_back_unchanged(actor):
    custom_attribute_create(actor=actor, name="region", type="enum", choices=["EMEA", "AMER"])
    custom_attribute_create(actor=actor, name="skills", multi_valued=True)
    custom_attribute_create(actor=actor, name="remote", type="boolean")
    boss = UserFactory(username="boss")
    services.user_create(
        actor=actor,
        username="bjensen",
        email="bjensen@example.com",
        title="Tour Guide",
        department="Tours",
        timezone="Europe/Paris",
        manager=boss,
        phone_numbers=[{"value": "+1 555 0100", "type": "work", "primary": True}, {"value": "+1 555 0199"}],
        emails=[{"value": "babs@home.example", "type": "home"}],
        addresses=[{"locality": "Paris", "country": "FR", "type": "work", "primary": True}],
        photos=[{"value": "https://photos.example.com/b.jpg", "type": "photo"}],
        custom_attributes={"region": "EMEA", "skills": ["go", "sql"], "remote": False},
    )
    text = _export()
    header = next(csv.reader(io.StringIO(text)))
    for column in ("title", "department", "manager", "phone_numbers", "addresses", "custom.region", "custom.skills"):
        assert column in header
    row = _rows(text)["bjensen"]
    assert row["manager"] == "boss"
    # The leading + would start a formula in a spreadsheet: quoted, and unquoted on import.
    assert row["phone_numbers"] == "'+1 555 0100 (work, primary); +1 555 0199"
    assert row["custom.skills"] == "go; sql" and row["custom.remote"] == "false"

    before = {user.username: services.user_snapshot(user) for user in User.objects.all()}
    report = user_csv_import(actor=actor, content=text.encode())
    assert report.refused == 0 and report.created == 0 and report.updated == 0
    after = {user.username: services.user_snapshot(user) for user in User.objects.all()}
    assert after == before


def test_import_creates_and_updates_only_the_files_columns(actor):
    custom_attribute_create(actor=actor, name="badge", type="number")
    custom_attribute_create(actor=actor, name="floor")
    existing = services.user_create(
        actor=actor, username="existing", title="Engineer", division="Core", custom_attributes={"floor": "2"}
    )
    boss = UserFactory(username="boss", email="boss@example.com")
    content = (
        b"username,email,title,department,manager,phone_numbers,custom.badge\n"
        b"existing,existing@example.com,Staff Engineer,R&D,boss@example.com,+1 555 (work),7\n"
        b"newbie,newbie@example.com,Intern,R&D,boss,,\n"
    )
    report = user_csv_import(actor=actor, content=content)
    assert (report.created, report.updated, report.refused) == (1, 1, 0), report.errors
    existing = User.objects.get(pk=existing.pk)
    assert (existing.title, existing.department, existing.division) == ("Staff Engineer", "R&D", "Core")
    assert existing.manager_id == boss.pk
    assert existing.phone_numbers == [{"value": "+1 555", "type": "work", "primary": False}]
    assert existing.custom_attributes == {"floor": "2", "badge": 7}
    newbie = User.objects.get(username="newbie")
    assert newbie.manager_id == boss.pk and newbie.title == "Intern"
    assert AuditEvent.objects.filter(action="user.create", target_id=str(newbie.pk)).exists()


def test_refused_rows_are_listed_and_the_rest_written(actor):
    custom_attribute_create(actor=actor, name="badge", type="number")
    content = (
        b"username,timezone,manager,custom.badge,phone_numbers\n"
        b"good.one,Europe/Paris,,1,\n"
        b"bad.zone,Mars/Base,,2,\n"
        b"bad.badge,,,lots,\n"
        b"bad.manager,,nobody.here,,\n"
        b'bad.phones,,,,"[{""value"": 1"\n'
        b"bad name,,,,\n"
        b"self.loop,,self.loop,,\n"
    )
    report = user_csv_import(actor=actor, content=content)
    assert report.created == 1 and report.refused == 6
    by_line = {error.line: error for error in report.errors}
    assert "timezone" in by_line[3].errors
    assert "custom_attributes.badge" in by_line[4].errors
    assert "nobody.here" in by_line[5].errors["manager"][0]
    assert "JSON" in by_line[6].errors["phone_numbers"][0]
    assert "username" in by_line[7].errors
    assert "manager" in by_line[8].errors
    written = User.objects.filter(username__in=["good.one", "bad.zone", "self.loop"])
    assert set(written.values_list("username", flat=True)) == {"good.one"}


def test_staff_accounts_beyond_reach_are_refused_rows():
    helpdesk = UserFactory(username="helpdesk", is_staff=True)
    services.user_set_admin_role(actor=None, user=helpdesk, role="helpdesk")
    UserFactory(username="an.admin", is_staff=True)
    UserFactory(username="person")
    report = user_csv_import(actor=helpdesk, content=b"username,title\nan.admin,Intern\nperson,Welder\n")
    assert report.updated == 1 and report.refused == 1
    assert "an.admin" in report.errors[0].errors["row"][0]
    assert User.objects.get(username="an.admin").title == ""


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00", "UTF-8"),
        (b"email,title\nx@example.com,CEO\n", "username column"),
        (b"username,shoe_size\nx,42\n", "Unknown columns: shoe_size"),
        (b"username,custom.nothing\nx,1\n", "Unknown columns: custom.nothing"),
        (b"username,title,Title\nx,a,b\n", "twice"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_clear_error(actor, content, fragment):
    with pytest.raises(ValidationError) as caught:
        user_csv_import(actor=actor, content=content)
    assert fragment in caught.value.message_dict["file"][0]


def test_parse_items_forms():
    assert parse_items("phone_numbers", "(555) 555-0100 (work, primary); 555-0199") == [
        {"value": "(555) 555-0100", "primary": True, "type": "work"},
        {"value": "555-0199"},
    ]
    assert parse_items("addresses", "1 Main St, Springfield") == [{"formatted": "1 Main St, Springfield"}]
    assert parse_items("emails", '[{"value": "a@b.example", "type": "home"}]') == [
        {"value": "a@b.example", "type": "home"}
    ]
    assert parse_items("photos", "") == []
