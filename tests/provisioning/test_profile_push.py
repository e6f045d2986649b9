"""A profile change goes to the apps that receive the changed attribute, and only to those.

Two connectors, each on its own scim2-server (a SCIM implementation nobody here wrote), map
different attributes: one the job title, a custom attribute and the manager (as the manager's id in
that app, in the enterprise extension), the other the department. The directory's services make
the changes; the engine runs in-process; what each app holds is read back over its own SCIM API.
"""

import pytest

from apps.connectors import services as connector_services
from apps.connectors.catalog import SEED_SCIM_USER_MAPPINGS
from apps.connectors.models import MappingKind
from apps.directory import services as directory
from apps.directory.custom_attributes import custom_attribute_create
from apps.provisioning.models import OutboxEvent
from tests.factories import UserFactory
from tests.provisioning.conftest import ScimServerProcess
from tests.provisioning.helpers import assign, make_connector, pending, remote, sync

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def two_apps():
    apps = [ScimServerProcess(token=f"profile-push-{n}") for n in range(2)]
    for app in apps:
        app.start()
    yield apps
    for app in apps:
        app.stop()


def _map(connector, *extra):
    rows = [{"source": s, "target": t} for s, t in (*SEED_SCIM_USER_MAPPINGS, *extra)]
    connector_services.mappings_replace(actor=None, connector=connector, kind=MappingKind.SCIM_USER, rows=rows)


def _events(connector) -> list[str]:
    return list(
        OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).values_list("reason", flat=True)
    )


def test_a_changed_attribute_reaches_only_the_apps_that_map_it(two_apps):
    titles_app, departments_app = two_apps
    custom_attribute_create(actor=None, name="badge", label="Badge number", type="string")
    titles = make_connector(titles_app, name="Titles")
    _map(titles, ("title", "title"), ("custom.badge", "nickName"), ("manager.app_id", f"{ENTERPRISE}:manager.value"))
    departments = make_connector(departments_app, name="Departments")
    _map(departments, ("department", f"{ENTERPRISE}:department"))
    boss = UserFactory(username="boss", email="boss@example.com", first_name="Bea", last_name="Boss")
    alice = UserFactory(username="alice", email="alice@example.com", first_name="Alice", last_name="Liddell")
    directory.user_update(actor=None, user=alice, title="Engineer", department="R&D", manager=boss)
    for connector in (titles, departments):
        assign(connector, user=boss)
        assign(connector, user=alice)
        sync(connector)
    # The manager was linked in the same sync: the report was sent again with the manager's id.
    boss_id = remote(titles, boss).remote_id
    held = titles_app.user_by_name("alice")
    assert held["title"] == "Engineer"
    assert held[ENTERPRISE]["manager"]["value"] == boss_id
    assert departments_app.user_by_name("alice")[ENTERPRISE]["department"] == "R&D"
    assert "title" not in departments_app.user_by_name("alice")

    # The title: only the app that maps it hears of it.
    directory.user_update(actor=None, user=alice, title="Staff Engineer")
    assert _events(titles) == ["user.update"]
    assert _events(departments) == []
    sync(titles)
    assert titles_app.user_by_name("alice")["title"] == "Staff Engineer"

    # The department: only the other one.
    directory.user_update(actor=None, user=alice, department="Platform")
    assert (pending(titles), pending(departments)) == (0, 1)
    sync(departments)
    assert departments_app.user_by_name("alice")[ENTERPRISE]["department"] == "Platform"

    # A custom attribute, mapped by the first app only.
    directory.user_update(actor=None, user=alice, custom_attributes={"badge": "B-7"})
    assert (pending(titles), pending(departments)) == (1, 0)
    sync(titles)
    assert titles_app.user_by_name("alice")["nickName"] == "B-7"

    # Something neither maps (the locale): nobody hears of it.
    directory.user_update(actor=None, user=alice, locale="fr-FR")
    assert (pending(titles), pending(departments)) == (0, 0)

    # A status change reaches both, whatever they map.
    directory.user_suspend(actor=None, user=alice)
    assert (pending(titles), pending(departments)) == (1, 1)


def test_the_manager_goes_out_as_the_managers_id_in_that_app_once_linked_there(two_apps):
    first_app, second_app = two_apps
    first = make_connector(first_app, name="First")
    second = make_connector(second_app, name="Second")
    for connector in (first, second):
        # manager.displayName is read-only in SCIM: the manager's name goes to a writable attribute.
        _map(connector, ("manager.app_id", f"{ENTERPRISE}:manager.value"), ("manager.display_name", "nickName"))
    boss = UserFactory(username="boss", email="boss@example.com", first_name="Bea", last_name="Boss")
    alice = UserFactory(username="alice", email="alice@example.com", first_name="Alice", last_name="Liddell")
    directory.user_update(actor=None, user=alice, manager=boss)
    # The manager is in the first app only: the second gets no manager id (nothing to point at).
    assign(first, user=boss)
    for connector in (first, second):
        assign(connector, user=alice)
        sync(connector)
    in_first = first_app.user_by_name("alice")
    assert in_first[ENTERPRISE]["manager"]["value"] == remote(first, boss).remote_id
    assert in_first[ENTERPRISE]["manager"]["value"] != str(boss.pk)
    assert in_first["nickName"] == "Bea Boss"
    in_second = second_app.user_by_name("alice")
    assert ENTERPRISE not in in_second
    assert in_second["nickName"] == "Bea Boss"

    # Once the manager is provisioned to the second app, the report follows with the manager's id there.
    assign(second, user=boss)
    sync(second)
    assert second_app.user_by_name("alice")[ENTERPRISE]["manager"]["value"] == remote(second, boss).remote_id

    # The manager's display name changes: the reports are re-sent where it is mapped.
    directory.user_update(actor=None, user=boss, display_name="Beatrice Boss")
    sync(first)
    assert first_app.user_by_name("alice")["nickName"] == "Beatrice Boss"
