"""The console's profile: the user form's sections, the manager picker, the custom attribute pages,
the users list's profile filters, and the mapping pickers that offer the profile."""

import pytest

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.directory import services as directory
from apps.directory.custom_attributes import custom_attribute_create
from apps.directory.models import CustomAttribute, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EMPTY_ROWS = {
    f"{prefix}-{key}": value
    for prefix in ("emails", "phone_numbers", "addresses", "photos")
    for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
}


def _identity(user: User) -> dict:
    return {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "display_name": user.display_name,
        "employee_id": user.employee_id,
        "external_id": user.external_id,
    }


def _post(user: User, **fields) -> dict:
    return {**_identity(user), **EMPTY_ROWS, **fields}


@pytest.fixture
def boss(db) -> User:
    return UserFactory(username="bea.boss", email="bea@example.com", first_name="Bea", last_name="Boss")


@pytest.fixture
def alice(db) -> User:
    return UserFactory(username="alice", email="alice@example.com", first_name="Alice", last_name="Liddell")


def test_the_user_form_edits_every_section(helpdesk_client, alice, boss):
    custom_attribute_create(actor=None, name="badge", label="Badge number", type="string")
    custom_attribute_create(actor=None, name="floor", label="Floor", type="number")
    page = helpdesk_client.get(f"/console/users/{alice.pk}/edit/")
    html = page.content.decode()
    for legend in (
        "<legend>Work</legend>",
        "<legend>Contact</legend>",
        "<legend>Locale</legend>",
        "<legend>Custom attributes</legend>",
        "Phone numbers",
        "Addresses",
        "Badge number",
    ):
        assert legend in html

    response = helpdesk_client.post(
        f"/console/users/{alice.pk}/edit/",
        _post(
            alice,
            title="Engineer",
            department="R&D",
            cost_center="CC-9",
            manager=str(boss.pk),
            locale="fr-FR",
            timezone="Europe/Paris",
            **{
                "phone_numbers-TOTAL_FORMS": "2",
                "phone_numbers-0-value": "+1 555 0100",
                "phone_numbers-0-type": "work",
                "phone_numbers-1-value": "+1 555 0199",
                "phone_numbers-1-type": "mobile",
                "phone_numbers-1-primary": "on",
                "addresses-TOTAL_FORMS": "1",
                "addresses-0-street_address": "1 Main St",
                "addresses-0-locality": "Springfield",
                "addresses-0-type": "work",
                "emails-TOTAL_FORMS": "1",
                "emails-0-value": "alice@home.example",
                "emails-0-type": "home",
            },
            custom__badge="B-7",
            custom__floor="3",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert (alice.title, alice.department, alice.cost_center, alice.manager_id) == ("Engineer", "R&D", "CC-9", boss.pk)
    assert (alice.locale, alice.timezone) == ("fr-FR", "Europe/Paris")
    assert [(p["value"], p["type"], p["primary"]) for p in alice.phone_numbers] == [
        ("+1 555 0100", "work", False),
        ("+1 555 0199", "mobile", True),
    ]
    assert alice.addresses[0]["locality"] == "Springfield"
    assert alice.emails[0]["value"] == "alice@home.example"
    assert alice.custom_attributes == {"badge": "B-7", "floor": 3}
    detail = helpdesk_client.get(f"/console/users/{alice.pk}/").content.decode()
    for shown in ("Engineer", "Springfield", "+1 555 0199", "Bea Boss", "B-7", "Europe/Paris"):
        assert shown in detail

    # Saving the page as it is changes nothing (the rows and the custom values compare equal).
    before = AuditEvent.objects.filter(action="user.update").count()
    unchanged = helpdesk_client.get(f"/console/users/{alice.pk}/edit/")
    assert unchanged.status_code == 200
    assert AuditEvent.objects.filter(action="user.update").count() == before


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "id_timezone", "time zone"),
        ({"locale": "not a locale!"}, "id_locale", ""),
        ({"manager": "not-a-uuid"}, "id_manager", "Choose a person."),
        ({"profile_url": "ftp://example.com/x"}, "id_profile_url", ""),
        ({"custom__floor": "three"}, "id_custom__floor", ""),
        (
            {
                "phone_numbers-TOTAL_FORMS": "2",
                "phone_numbers-0-value": "1",
                "phone_numbers-0-primary": "on",
                "phone_numbers-1-value": "2",
                "phone_numbers-1-primary": "on",
            },
            "phone_numbers_error",
            "Only one phone number can be primary.",
        ),
        (
            {"phone_numbers-TOTAL_FORMS": "1", "phone_numbers-0-type": "work"},
            "id_phone_numbers-0-value_error",
            "Enter the phone number",
        ),
        ({"emails-TOTAL_FORMS": "1", "emails-0-value": "not an email"}, "id_emails-0-value_error", ""),
        ({"phone_numbers-TOTAL_FORMS": "x"}, "", ""),
    ],
)
def test_bad_profile_input_is_a_form_error_on_its_field(helpdesk_client, alice, fields, field_id, message):
    custom_attribute_create(actor=None, name="floor", label="Floor", type="number")
    response = helpdesk_client.post(f"/console/users/{alice.pk}/edit/", _post(alice, **fields))

    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="c-alert c-alert-bad c-error-summary"' in html
    if field_id:
        assert f'id="{field_id}' in html or f'href="#{field_id}' in html
    assert message in html
    alice.refresh_from_db()
    assert alice.timezone == "" and alice.custom_attributes == {}


def test_a_manager_who_reports_to_the_user_is_refused_on_the_manager_field(helpdesk_client, alice, boss):
    directory.user_update(actor=None, user=boss, manager=alice)
    response = helpdesk_client.post(f"/console/users/{alice.pk}/edit/", _post(alice, manager=str(boss.pk)))
    assert response.status_code == 400
    assert 'id="id_manager_error"' in response.content.decode()


def test_a_new_user_gets_the_profile_and_must_have_the_required_custom_attributes(helpdesk_client, boss):
    custom_attribute_create(
        actor=None, name="site", label="Site", type="enum", choices=["Paris", "Oslo"], required=True
    )
    base = {"username": "newbie", "email": "newbie@example.com", "status": "active", **EMPTY_ROWS}
    refused = helpdesk_client.post("/console/users/new/", {**base, "title": "Intern"})
    assert refused.status_code == 400
    assert 'id="id_custom__site_error"' in refused.content.decode()
    assert not User.objects.filter(username="newbie").exists()

    created = helpdesk_client.post(
        "/console/users/new/", {**base, "title": "Intern", "manager": str(boss.pk), "custom__site": "Oslo"}
    )
    assert created.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert (newbie.title, newbie.manager_id, newbie.custom_attributes) == ("Intern", boss.pk, {"site": "Oslo"})


def test_the_manager_picker_searches_and_chooses(helpdesk_client, alice, boss):
    found = helpdesk_client.get("/console/users/manager/search/", {"q": "bea", "exclude": str(alice.pk)})
    assert found.status_code == 200
    assert "bea.boss" in found.content.decode()
    assert f"/console/users/manager/choice/?id={boss.pk}" in found.content.decode()
    # The person edited is never offered as their own manager.
    itself = helpdesk_client.get("/console/users/manager/search/", {"q": "alice", "exclude": str(alice.pk)})
    assert "Nobody matches" in itself.content.decode()
    assert "Type at least" in helpdesk_client.get("/console/users/manager/search/", {"q": "a"}).content.decode()

    chosen = helpdesk_client.get("/console/users/manager/choice/", {"id": str(boss.pk)}).content.decode()
    assert f'name="manager" id="id_manager" value="{boss.pk}"' in chosen and "Bea Boss" in chosen
    for bad in ("", "nonsense", "00000000-0000-0000-0000-000000000000"):
        cleared = helpdesk_client.get("/console/users/manager/choice/", {"id": bad})
        assert cleared.status_code == 200 and 'value=""' in cleared.content.decode()


def test_readonly_admins_see_the_custom_attributes_but_cannot_define_them(readonly_client, helpdesk_client):
    definition = custom_attribute_create(actor=None, name="badge", label="Badge number", type="string")
    page = readonly_client.get("/console/custom-attributes/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "badge" in html and "Badge number" in html
    assert "/console/custom-attributes/new/" not in html and "Custom attributes</a>" in html
    for client in (readonly_client, helpdesk_client):
        assert client.get("/console/custom-attributes/new/").status_code == 403
        assert client.post(f"/console/custom-attributes/{definition.pk}/delete/").status_code == 403
    assert CustomAttribute.objects.filter(name="badge").exists()


def test_admins_define_edit_and_delete_custom_attributes(admin_client, alice):
    created = admin_client.post(
        "/console/custom-attributes/new/",
        {"name": "site", "label": "Site", "type": "enum", "choices": "Paris\nOslo\n"},
    )
    assert created.status_code == 302
    definition = CustomAttribute.objects.get(name="site")
    assert definition.choices == ["Paris", "Oslo"]

    # The form names the field of every error: a taken name, a bad name, an enum without choices.
    for data, field in (
        ({"name": "SITE", "label": "x", "type": "string"}, "name"),
        ({"name": "9lives", "label": "x", "type": "string"}, "name"),
        ({"name": "colour", "label": "x", "type": "enum", "choices": ""}, "choices"),
        ({"name": "colour", "label": "x", "type": "weird"}, "type"),
    ):
        refused = admin_client.post("/console/custom-attributes/new/", data)
        assert refused.status_code == 400, data
        assert f'id="id_{field}_error"' in refused.content.decode(), (data, refused.content.decode()[:3000])

    directory.user_update(actor=None, user=alice, custom_attributes={"site": "Oslo"})
    # Taking away a choice a user holds is refused, with the reason on the form.
    unfit = admin_client.post(
        f"/console/custom-attributes/{definition.pk}/edit/", {"label": "Site", "type": "enum", "choices": "Paris"}
    )
    assert unfit.status_code == 400
    assert "alice" in unfit.content.decode()
    edited = admin_client.post(
        f"/console/custom-attributes/{definition.pk}/edit/",
        {"name": "renamed", "label": "Office", "type": "enum", "choices": "Paris\nOslo\nRome"},
    )
    assert edited.status_code == 302
    definition.refresh_from_db()
    assert (definition.name, definition.label, definition.choices) == ("site", "Office", ["Paris", "Oslo", "Rome"])

    confirm = admin_client.get(f"/console/custom-attributes/{definition.pk}/delete/")
    assert "1 user holds a value of it" in confirm.content.decode()
    assert admin_client.post(f"/console/custom-attributes/{definition.pk}/delete/").status_code == 302
    assert not CustomAttribute.objects.exists()
    alice.refresh_from_db()
    assert alice.custom_attributes == {}


def test_the_users_list_filters_on_the_profile(readonly_client, alice, boss):
    custom_attribute_create(actor=None, name="floor", label="Floor", type="number")
    bob = UserFactory(username="bob", email="bob@example.com")
    directory.user_update(
        actor=None, user=alice, department="R&D", title="Engineer", manager=boss, custom_attributes={"floor": 3}
    )
    directory.user_update(actor=None, user=bob, department="Sales", title="Engineer")

    def listed(**query) -> set[str]:
        response = readonly_client.get("/console/users/", query)
        assert response.status_code == 200, response.content.decode()[:2000]
        names = {"alice", "bob", "bea.boss"}
        return {name for name in names if f">{name}</a>" in response.content.decode()}

    assert listed(department="r&d") == {"alice"}
    assert listed(title="Engineer") == {"alice", "bob"}
    assert listed(title="engineer", department="Sales") == {"bob"}
    assert listed(manager="bea@example.com") == {"alice"}
    assert listed(attribute="custom.floor", value="3") == {"alice"}

    for query, field in (
        ({"manager": "nobody"}, "manager"),
        ({"attribute": "custom.floor", "value": "three"}, "value"),
        ({"attribute": "custom.floor"}, "value"),
        ({"value": "3"}, "attribute"),
        ({"attribute": "custom.gone", "value": "1"}, "attribute"),
    ):
        response = readonly_client.get("/console/users/", query)
        assert response.status_code == 400, query
        assert f'id="id_{field}_error"' in response.content.decode(), query


def test_the_mapping_pickers_offer_the_profile_and_custom_attributes(admin_client):
    custom_attribute_create(actor=None, name="badge", label="Badge number", type="string")
    connector = connector_services.connector_create(actor=None, template="slack", name="Slack", enabled=False)
    html = admin_client.get(f"/console/connectors/{connector.slug}/mappings/").content.decode()
    for offered in (
        'value="title"',
        'value="department"',
        'value="manager.email"',
        'value="custom.badge"',
        'value="manager.app_id"',
        'value="phone_numbers.primary"',
    ):
        assert offered in html
    # A mapping that names a custom attribute nobody defined is refused on its row.
    response = admin_client.post(
        f"/console/connectors/{connector.slug}/mappings/",
        {
            "action": "save",
            "saml-TOTAL_FORMS": "1",
            "saml-INITIAL_FORMS": "0",
            "saml-0-source": "custom.nope",
            "saml-0-target": "nope",
            "saml-0-name_format": "",
        },
    )
    assert response.status_code == 400
    assert "There is no custom attribute" in response.content.decode()


def test_the_csv_export_takes_the_lists_profile_filters(readonly_client, alice, boss):
    directory.user_update(actor=None, user=alice, department="R&D")
    response = readonly_client.get("/console/users/export.csv", {"department": "r&d"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert "alice" in body and "bea.boss" not in body
