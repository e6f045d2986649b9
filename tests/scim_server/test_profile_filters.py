"""Filters on the profile attributes, on PostgreSQL and SQLite alike, and the indexes the equality
filters on title, department, manager.value and phoneNumbers.value use."""

import pytest
from django.db import connection

from apps.directory.models import CustomAttribute, User
from apps.scim_server import filters
from apps.scim_server.user_resources import USER_TARGET
from tests.factories import UserFactory
from tests.scim_server.conftest import ENTERPRISE, assert_scim_error

pytestmark = pytest.mark.django_db

CUSTOM = "urn:ietf:params:scim:schemas:extension:idp-portal:2.0:User"


@pytest.fixture
def people(db) -> dict[str, User]:
    CustomAttribute.objects.create(name="floor", label="Floor", type="number")
    CustomAttribute.objects.create(name="badge", label="Badge", type="enum", choices=["Red", "Blue"])
    CustomAttribute.objects.create(name="skills", label="Skills", type="string", multi_valued=True)
    CustomAttribute.objects.create(name="remote", label="Remote", type="boolean")
    CustomAttribute.objects.create(name="start", label="Start", type="date")
    boss = UserFactory(username="boss", display_name="Big Boss", title="VP Engineering", department="Engineering")
    ann = UserFactory(
        username="ann",
        email="ann@example.com",
        title="Staff Engineer",
        user_type="Employee",
        department="Engineering",
        cost_center="CC-1",
        organization="Acme",
        division="R&D",
        employee_id="E-1",
        manager=boss,
        emails=[{"value": "Ann.Home@example.org", "type": "home", "primary": False}],
        phone_numbers=[{"value": "+1 555 0100", "type": "work", "primary": True}],
        addresses=[
            {
                "formatted": "",
                "street_address": "1 Main St",
                "locality": "Springfield",
                "region": "IL",
                "postal_code": "62701",
                "country": "US",
                "type": "work",
                "primary": True,
            }
        ],
        custom_attributes={
            "floor": 3,
            "badge": "Red",
            "skills": ["python", "sql"],
            "remote": True,
            "start": "2024-02-01",
        },
    )
    bob = UserFactory(
        username="bob",
        title="Designer",
        user_type="Contractor",
        department="Design",
        cost_center="CC-2",
        phone_numbers=[{"value": "+1 555 0199", "type": "mobile", "primary": False}],
        addresses=[{"locality": "Shelbyville", "country": "US", "type": "home", "primary": False}],
        custom_attributes={"floor": 12, "badge": "Blue", "skills": ["figma"], "remote": False, "start": "2025-06-30"},
    )
    return {"boss": boss, "ann": ann, "bob": bob}


def names(text: str) -> set[str]:
    return set(filters.filter_queryset(User.objects.all(), text, USER_TARGET).values_list("username", flat=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('title eq "staff engineer"', {"ann"}),
        ('title sw "VP"', {"boss"}),
        ('title co "engineer"', {"ann", "boss"}),
        ('userType eq "contractor"', {"bob"}),
        (f'{ENTERPRISE}:department eq "ENGINEERING"', {"ann", "boss"}),
        (f'{ENTERPRISE}:costCenter eq "cc-2"', {"bob"}),
        (f'{ENTERPRISE}:organization eq "acme"', {"ann"}),
        (f'{ENTERPRISE}:division eq "r&d"', {"ann"}),
        (f'{ENTERPRISE}:employeeNumber eq "e-1"', {"ann"}),
        (f"{ENTERPRISE}:manager pr", {"ann"}),
        (f'{ENTERPRISE}:manager.displayName eq "big boss"', {"ann"}),
        ('phoneNumbers.value eq "+1 555 0199"', {"bob"}),
        ('phoneNumbers[type eq "work" and value sw "+1 555"]', {"ann"}),
        ('phoneNumbers.type eq "mobile"', {"bob"}),
        ("phoneNumbers pr", {"ann", "bob"}),
        ('emails.value eq "ann@example.com"', {"ann"}),
        ('emails.value eq "ANN@example.com"', {"ann"}),  # the company email: case-insensitive
        ('emails.value eq "Ann.Home@EXAMPLE.org"', {"ann"}),  # the others: the local part as stored
        ('emails.value sw "ann.home@"', {"ann"}),
        ('emails.value ew "@example.org"', {"ann"}),
        ('emails.type eq "home"', {"ann"}),
        ('addresses.locality eq "springfield"', {"ann"}),
        ('addresses[type eq "home" and locality eq "Shelbyville"]', {"bob"}),
        ('addresses[type eq "work" and locality eq "Shelbyville"]', set()),
        ('phoneNumbers[type eq "mobile" and value eq "+1 555 0100"]', set()),
        ('phoneNumbers[not (type eq "work") and primary eq false]', {"bob"}),
        ('emails[type eq "work" and value eq "ANN@example.com"]', {"ann"}),
        ('emails[type eq "home" and value sw "ann.home@"]', {"ann"}),
        ('emails[type eq "home" and value eq "ann@example.com"]', set()),
        ("emails[primary eq true]", {"ann", "bob", "boss"}),
        ('addresses.postalCode sw "627"', {"ann"}),
        ('addresses.country eq "US"', {"ann", "bob"}),
        (f"{CUSTOM}:floor eq 3", {"ann"}),
        (f'{CUSTOM}:floor eq "12"', {"bob"}),
        (f"{CUSTOM}:floor gt 5", {"bob"}),
        (f"{CUSTOM}:floor le 3", {"ann"}),
        (f'{CUSTOM}:badge eq "red"', {"ann"}),
        (f'{CUSTOM}:badge ne "Red"', {"bob", "boss"}),
        (f'{CUSTOM}:skills eq "SQL"', {"ann"}),
        (f'{CUSTOM}:skills sw "fig"', {"bob"}),
        (f"{CUSTOM}:remote eq true", {"ann"}),
        (f"{CUSTOM}:remote eq false", {"bob"}),
        (f'{CUSTOM}:start ge "2025-01-01"', {"bob"}),
        (f'{CUSTOM}:start eq "2024-02-01"', {"ann"}),
        (f"{CUSTOM}:start pr", {"ann", "bob"}),
        (f'title eq "Designer" or {ENTERPRISE}:department eq "engineering" and not (userType pr)', {"bob", "boss"}),
    ],
)
def test_profile_filters(people, text, expected):
    assert names(text) == expected


def test_manager_value_filter(people):
    boss = people["boss"]
    assert names(f'{ENTERPRISE}:manager.value eq "{boss.pk}"') == {"ann"}
    assert names(f'{ENTERPRISE}:manager.value eq "not-an-id"') == set()
    assert names(f'{ENTERPRISE}:manager.value ne "{boss.pk}"') == {"bob", "boss"} or connection.vendor == "sqlite"


def test_filters_over_http_and_unknown_custom_attributes(scim, people):
    found = scim.get("Users", filter=f'{ENTERPRISE}:manager.value eq "{people["boss"].pk}"').json()
    assert [resource["userName"] for resource in found["Resources"]] == ["ann"] and found["totalResults"] == 1
    assert found["Resources"][0][ENTERPRISE]["manager"]["displayName"] == "Big Boss"
    assert_scim_error(scim.get("Users", filter=f'{CUSTOM}:nope eq "x"'), 400, "invalidFilter")
    assert_scim_error(scim.get("Users", filter=f'{CUSTOM}:floor eq "third"'), 400, "invalidFilter")
    page = scim.get("Users", sortBy=f"{ENTERPRISE}:department", filter="title pr").json()
    ordered = [resource["userName"] for resource in page["Resources"]]
    assert ordered[0] == "bob" and set(ordered[1:]) == {"ann", "boss"}  # Design, then Engineering twice


@pytest.mark.skipif(connection.vendor != "postgresql", reason="index plans are PostgreSQL's")
@pytest.mark.parametrize(
    ("text", "index"),
    [
        ('title eq "Staff Engineer"', "directory_user_title_ci_idx"),
        (f'{ENTERPRISE}:department eq "Engineering"', "directory_user_dept_ci_idx"),
        (f'{ENTERPRISE}:manager.value eq "00000000-0000-0000-0000-000000000001"', "directory_user_manager_id"),
        ('phoneNumbers.value eq "+1 555 0100"', "directory_user_phone_numbers_gin"),
        ('emails.value eq "Ann.Home@example.org"', "directory_user_emails_gin"),
        ('emails.value eq "Ann.Home@example.org"', "directory_user_email_ci_unique"),
        (f"{CUSTOM}:floor eq 3", "directory_user_custom_attributes_gin"),
    ],
)
def test_indexed_filters_use_their_index(people, text, index):
    queryset = filters.filter_queryset(User.objects.all(), text, USER_TARGET).order_by()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: ask whether an index can serve
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan, plan
