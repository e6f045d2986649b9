"""SCIM and API tokens in the console: the secret shown once, hashed at rest, working at once,
revocable; who may see and do what; re-authentication before creating one."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.api.models import ApiToken
from apps.api.services import api_token_create
from apps.audit.models import AuditEvent
from apps.common.tokens import hash_secret
from apps.directory.models import AdminRole
from apps.scim_server.models import ScimToken, ScimTokenScope
from apps.scim_server.services import scim_token_create
from tests.console.conftest import console_client, make_staff
from tests.factories import GroupFactory, UserFactory

SECRET_PATTERN = re.compile(r"idp_(?:scim|api)_[A-Za-z0-9_-]{43}")


def _secrets_in(response) -> list[str]:
    return SECRET_PATTERN.findall(response.content.decode())


def _scim(secret: str, path: str = "/scim/v2/Users"):
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")


# --- SCIM tokens ----------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_it_works_against_scim_at_once(db, admin, admin_client):
    UserFactory(username="jane.doe")
    form = admin_client.get("/console/tokens/scim/new/")
    assert form.status_code == 200
    assert 'name="name"' in form.content.decode()

    response = admin_client.post("/console/tokens/scim/new/", {"name": "Workday HR", "scope": "read_write"})
    assert response.status_code == 201
    page = response.content.decode()
    [secret] = _secrets_in(response)
    assert page.count(secret) == 1
    assert 'data-copy-target="new-token-secret"' in page
    assert "only time the token is shown" in page
    assert "http://127.0.0.1:8000/scim/v2" in re.sub(r"<[^>]+>", "", page)  # shown in pieces that wrap

    token = ScimToken.objects.get()
    assert token.name == "Workday HR"
    assert token.secret_hash == hash_secret(secret)
    assert secret not in token.secret_hash and token.prefix == secret[: len(token.prefix)]

    listed = _scim(secret)
    assert listed.status_code == 200
    assert any(user["userName"] == "jane.doe" for user in listed.json()["Resources"])

    event = AuditEvent.objects.get(action="scim_token.create")
    assert event.actor == admin
    assert secret not in str(event.after)


def test_the_secret_is_never_in_any_later_page(db, admin, admin_client):
    admin_client.post("/console/tokens/scim/new/", {"name": "HR", "scope": "read_only"})
    token = ScimToken.objects.get()
    pages = [
        admin_client.get("/console/tokens/scim/"),
        admin_client.get(f"/console/tokens/scim/{token.pk}/"),
        admin_client.get(f"/console/tokens/scim/{token.pk}/revoke/"),
        admin_client.post(f"/console/tokens/scim/{token.pk}/revoke/", follow=True),
        admin_client.get("/console/tokens/scim/new/"),
        admin_client.get("/console/"),
    ]
    for page in pages:
        assert _secrets_in(page) == [], page.request["PATH_INFO"]
    listing = admin_client.get("/console/tokens/scim/").content.decode()
    assert f"{token.prefix}…" in listing


def test_revocation_stops_the_token_and_is_audited(db, admin, admin_client):
    token, secret = scim_token_create(actor=admin, name="HR")
    assert _scim(secret).status_code == 200
    confirm = admin_client.get(f"/console/tokens/scim/{token.pk}/revoke/")
    assert confirm.status_code == 200
    assert "will be refused from its next request" in confirm.content.decode()
    assert _scim(secret).status_code == 200  # the GET changed nothing

    done = admin_client.post(f"/console/tokens/scim/{token.pk}/revoke/")
    assert done.status_code == 302
    assert _scim(secret).status_code == 401
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.get(action="scim_token.revoke").actor == admin
    detail = admin_client.get(done["Location"]).content.decode()
    assert "revoked" in detail.lower()
    assert "Revoke token" not in detail


def test_list_shows_scope_group_and_last_use(db, admin, admin_client):
    group = GroupFactory(name="Contractors")
    _token, secret = scim_token_create(actor=admin, name="Agency", scope=ScimTokenScope.READ_ONLY, scope_group=group)
    _scim(secret)
    page = admin_client.get("/console/tokens/scim/").content.decode()
    assert "Agency" in page and "Read only" in page and "Group: Contractors" in page
    assert "from 127.0.0.1" in page
    assert 'data-copy-target="scim-base-url"' in page


def test_group_scoped_token_is_created_with_its_group(db, admin_client):
    group = GroupFactory(name="Interns")
    response = admin_client.post(
        "/console/tokens/scim/new/", {"name": "Intern feed", "scope": "read_write", "scope_group": str(group.pk)}
    )
    assert response.status_code == 201
    assert ScimToken.objects.get().scope_group == group


def test_invalid_input_gives_field_errors_and_writes_nothing(db, admin_client):
    response = admin_client.post("/console/tokens/scim/new/", {"name": "", "scope": "everything"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page
    assert "Select a valid choice." in page
    assert not ScimToken.objects.exists()
    assert not AuditEvent.objects.filter(action="scim_token.create").exists()


def test_creating_a_token_needs_a_recent_sign_in(db, admin):
    stale = console_client(admin, signed_in_seconds_ago=16 * 60)
    for method in (stale.get, stale.post):
        response = method("/console/tokens/scim/new/", {"name": "HR", "scope": "read_write"})
        assert response.status_code == 302
        assert response["Location"].startswith("/console/confirm/?next=")
    assert not ScimToken.objects.exists()
    # Listing and revoking are not sensitive.
    assert stale.get("/console/tokens/scim/").status_code == 200

    confirmed = stale.post("/console/confirm/", {"secret": "s3cret-Pass-99", "next": "/console/tokens/scim/new/"})
    assert confirmed["Location"] == "/console/tokens/scim/new/"
    assert stale.post("/console/tokens/scim/new/", {"name": "HR", "scope": "read_write"}).status_code == 201


def test_creating_an_api_token_needs_a_recent_sign_in(db, admin):
    stale = console_client(admin, signed_in_seconds_ago=16 * 60)
    response = stale.post("/console/tokens/api/new/", {"name": "ci", "user": admin.pk, "lifetime": "30"})
    assert response.status_code == 302
    assert response["Location"].startswith("/console/confirm/")
    assert not ApiToken.objects.exists()


def test_csrf_is_required(db, admin):
    client = console_client(admin)
    client.handler.enforce_csrf_checks = True
    assert client.post("/console/tokens/scim/new/", {"name": "HR", "scope": "read_write"}).status_code == 403
    assert not ScimToken.objects.exists()


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (AdminRole.SUPER_ADMIN, 200, True),
        (AdminRole.ADMIN, 200, True),
        (AdminRole.HELPDESK, 403, False),
        (AdminRole.READONLY, 200, False),
    ],
)
def test_access_per_role(db, super_admin, role, read, write):
    token, _ = scim_token_create(actor=super_admin, name="HR")
    api_token, _ = api_token_create(actor=super_admin, user=super_admin, name="ci")
    user = super_admin if role == AdminRole.SUPER_ADMIN else make_staff(role)
    client = console_client(user)
    for url in (
        "/console/tokens/scim/",
        f"/console/tokens/scim/{token.pk}/",
        "/console/tokens/api/",
        f"/console/tokens/api/{api_token.pk}/",
    ):
        assert client.get(url).status_code == read, url
    expected_write = 201 if write else 403
    assert client.post("/console/tokens/scim/new/", {"name": "x", "scope": "read_write"}).status_code == expected_write
    assert client.post(f"/console/tokens/scim/{token.pk}/revoke/").status_code == (302 if write else 403)
    api_new = client.post("/console/tokens/api/new/", {"name": "x", "user": user.pk, "lifetime": "30"})
    assert api_new.status_code == expected_write
    assert ApiToken.objects.filter(user=user, name="x").exists() == write
    if not write:
        assert client.post(f"/console/tokens/api/{api_token.pk}/revoke/").status_code == 403
    token.refresh_from_db()
    assert (token.revoked_at is not None) == write
    if read == 200:
        listing = client.get("/console/tokens/scim/").content.decode()
        assert ("New SCIM token" in listing) == write


def test_lists_have_a_fixed_number_of_queries(db, admin, admin_client, django_assert_max_num_queries):
    groups = [GroupFactory(name=f"g{n}") for n in range(3)]
    for n in range(60):
        scim_token_create(actor=admin, name=f"t{n}", scope_group=groups[n % 3])
        api_token_create(actor=admin, user=admin, name=f"a{n}")
    with django_assert_max_num_queries(12):
        scim = admin_client.get("/console/tokens/scim/")
    with django_assert_max_num_queries(12):
        api = admin_client.get("/console/tokens/api/")
    assert len(scim.context["page_obj"]) == 50
    assert len(api.context["page_obj"]) == 50
    assert "Next" in scim.content.decode()


def test_empty_states(db, readonly_client, admin_client):
    assert "No SCIM tokens yet" in readonly_client.get("/console/tokens/scim/").content.decode()
    assert "New SCIM token" not in readonly_client.get("/console/tokens/scim/").content.decode()
    assert "No API tokens yet" in admin_client.get("/console/tokens/api/").content.decode()


# --- API tokens -----------------------------------------------------------------------------


def test_api_token_shown_once_hashed_and_usable(db, admin, admin_client):
    response = admin_client.post("/console/tokens/api/new/", {"name": "Terraform", "user": admin.pk, "lifetime": "30"})
    assert response.status_code == 201
    [secret] = _secrets_in(response)
    assert secret.startswith("idp_api_")
    token = ApiToken.objects.get()
    assert token.user == admin and token.secret_hash == hash_secret(secret)
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)

    api = Client().get("/api/v1/users/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 200
    for url in ("/console/tokens/api/", f"/console/tokens/api/{token.pk}/"):
        assert _secrets_in(admin_client.get(url)) == []

    assert admin_client.post(f"/console/tokens/api/{token.pk}/revoke/").status_code == 302
    assert Client().get("/api/v1/users/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert _secrets_in(admin_client.get(f"/console/tokens/api/{token.pk}/")) == []
    actions = set(AuditEvent.objects.filter(actor=admin).values_list("action", flat=True))
    assert {"api_token.create", "api_token.revoke"} <= actions


def test_api_token_never_expiring_and_for_another_staff_member(db, admin, admin_client):
    ops = make_staff(AdminRole.HELPDESK, "ops.helpdesk")
    response = admin_client.post("/console/tokens/api/new/", {"name": "desk", "user": ops.pk, "lifetime": "0"})
    assert response.status_code == 201
    token = ApiToken.objects.get()
    assert token.user == ops and token.expires_at is None


def test_an_admin_cannot_mint_a_token_for_a_super_admin(db, admin_client, super_admin):
    response = admin_client.post("/console/tokens/api/new/", {"name": "boss", "user": super_admin.pk, "lifetime": "30"})
    assert response.status_code == 400
    assert "outranks yours" in response.content.decode()
    assert not ApiToken.objects.exists()
    token, _ = api_token_create(actor=super_admin, user=super_admin, name="boss")
    assert admin_client.post(f"/console/tokens/api/{token.pk}/revoke/").status_code == 403


def test_non_staff_are_not_offered(db, admin_client):
    UserFactory(username="plain.user")
    form = admin_client.get("/console/tokens/api/new/").content.decode()
    assert "plain.user" not in form


def test_expired_api_token_shows_as_expired(db, admin, admin_client):
    api_token_create(actor=admin, user=admin, name="old", expires_at=timezone.now() - timedelta(days=1))
    assert "Expired" in admin_client.get("/console/tokens/api/").content.decode()


def test_live_tokens_are_listed_before_revoked_ones(db, admin, admin_client):
    from apps.scim_server.services import scim_token_revoke

    old, _ = scim_token_create(actor=admin, name="old feed")
    scim_token_create(actor=admin, name="live feed")
    newer_revoked, _ = scim_token_create(actor=admin, name="newer revoked")
    scim_token_revoke(actor=admin, token=old)
    scim_token_revoke(actor=admin, token=newer_revoked)
    names = [token.name for token in admin_client.get("/console/tokens/scim/").context["page_obj"]]
    assert names[0] == "live feed"
    assert set(names[1:]) == {"old feed", "newer revoked"}
