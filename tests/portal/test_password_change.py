"""A temporary password is temporary: set by an admin, replaced by the person at the next sign-in,
before any other page. People may change their own password from their profile."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.api.services import api_token_create
from apps.audit.models import AuditEvent
from apps.directory import services as directory
from apps.directory.models import AdminRole, User
from tests.factories import UserFactory
from tests.portal.conftest import PASSWORD, sign_in
from tests.security.conftest import make_person, signed_in

pytestmark = pytest.mark.django_db

TEMPORARY = "Temporary-Passw0rd-1"
OWN = "My-very-own-Passw0rd-2"


def _admin() -> User:
    return make_person("ada.admin", role=AdminRole.ADMIN)


def test_console_temporary_password_must_be_replaced_at_the_next_sign_in(db):
    jane = UserFactory(username="jane.doe", password=PASSWORD)
    console = signed_in(_admin())
    set_it = console.post(
        f"/console/users/{jane.pk}/password/",
        {"action": "set", "password1": TEMPORARY, "password2": TEMPORARY, "temporary": "on"},
        follow=True,
    )
    assert "a temporary password now, to replace at the next sign-in" in set_it.content.decode()

    person = Client()
    first = sign_in(person, username="jane.doe", password=TEMPORARY)
    assert first.status_code == 302
    # Every page, the launchpad and a sign-in to an app included, leads to the new password first.
    for path in ("/", "/account/", "/saml/idp/anything/launch"):
        response = person.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/account/password/"), path
    page = person.get("/account/password/?next=/account/").content.decode()
    assert "Choose your own password" in page and 'name="current"' not in page

    same = person.post("/account/password/", {"new": TEMPORARY, "again": TEMPORARY, "next": "/account/"})
    assert same.status_code == 400 and "other than the one you have now" in same.content.decode()
    done = person.post("/account/password/", {"new": OWN, "again": OWN, "next": "/account/"})
    assert done.status_code == 302 and done["Location"] == "/account/"
    assert person.get("/").status_code == 200  # the same session goes on

    jane.refresh_from_db()
    assert jane.check_password(OWN) and not jane.must_change_password
    event = AuditEvent.objects.filter(action="user.set_password", target_id=str(jane.pk)).latest("id")
    assert event.actor == jane and event.after == {"temporary": False}


def test_an_admin_may_untick_temporary(db):
    jane = UserFactory(username="jane.doe", password=PASSWORD)
    console = signed_in(_admin())
    console.post(
        f"/console/users/{jane.pk}/password/", {"action": "set", "password1": TEMPORARY, "password2": TEMPORARY}
    )
    jane.refresh_from_db()
    assert not jane.must_change_password
    person = Client()
    sign_in(person, username="jane.doe", password=TEMPORARY)
    assert person.get("/").status_code == 200


def test_console_created_user_with_an_initial_password_replaces_it(db):
    console = signed_in(_admin())
    created = console.post(
        "/console/users/new/",
        {"username": "new.hire", "status": "active", "password": TEMPORARY, "password_temporary": "on"},
    )
    assert created.status_code == 302
    assert User.objects.get(username="new.hire").must_change_password


def test_api_passwords_are_temporary_unless_said_otherwise(db):
    _, secret = api_token_create(actor=None, user=_admin(), name="api")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    created = api.post("/api/v1/users", {"username": "api.hire", "password": TEMPORARY}, format="json").json()
    assert created["must_change_password"] is True
    kept = api.patch(
        f"/api/v1/users/{created['id']}", {"password": OWN, "password_temporary": False}, format="json"
    ).json()
    assert kept["must_change_password"] is False


def test_a_password_from_scim_is_not_temporary(db, settings):
    from tests.scim_server.conftest import make_scim_client

    settings.SCIM_ALLOW_PASSWORD_WRITE = True
    jane = UserFactory(username="jane.doe", password=PASSWORD)
    scim = make_scim_client("hr")
    response = scim.patch_ops(f"Users/{jane.pk}", {"op": "replace", "path": "password", "value": OWN})
    assert response.status_code == 200
    jane.refresh_from_db()
    assert jane.check_password(OWN) and not jane.must_change_password


def test_changing_ones_own_password_asks_for_the_current_one_and_counts_failures(db):
    jane = make_person("jane.doe")
    person = signed_in(jane)
    assert 'name="current"' in person.get("/account/password/").content.decode()

    wrong = person.post("/account/password/", {"current": "not-it", "new": OWN, "again": OWN})
    assert wrong.status_code == 400 and "not your current password" in wrong.content.decode()
    from axes.models import AccessAttempt

    assert AccessAttempt.objects.filter(username="jane.doe").exists()  # counted towards the lockout
    differ = person.post("/account/password/", {"current": PASSWORD, "new": OWN, "again": OWN + "x"})
    assert "differ" in differ.content.decode()
    done = person.post("/account/password/", {"current": PASSWORD, "new": OWN, "again": OWN})
    assert done.status_code == 302 and done["Location"] == "/account/"
    jane.refresh_from_db()
    assert jane.check_password(OWN)


def test_a_reset_by_email_clears_a_temporary_password(db):
    from apps.portal import passwords

    jane = UserFactory(username="jane.doe", email="jane@example.com", password=PASSWORD)
    directory.user_set_password(actor=_admin(), user=jane, password=TEMPORARY)
    assert User.objects.get(pk=jane.pk).must_change_password
    passwords.password_reset_complete(user=User.objects.get(pk=jane.pk), password=OWN)
    assert not User.objects.get(pk=jane.pk).must_change_password
