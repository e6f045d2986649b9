"""Flow and layout of the console (issue 14): error summaries at the top of every form, assignments
to browse without typing, the SSO tab's hints and certificate download, a mapping tab that never
drops what was typed, and URLs that wrap only after a slash. The browser checks are in
tests/e2e/test_console_walkthrough_browser.py."""

import re
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from apps.connectors import selectors
from apps.connectors import services as connector_services
from apps.saml_idp.keys import published_keys
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates" / "console"


def _twingate(**sso):
    return connector_services.connector_create(actor=None, template="twingate", name="Twingate", sso=sso or None)


def _summary(html: str) -> str:
    match = re.search(r"<div [^>]*data-error-summary.*?</div>", html, re.S)
    assert match, "no error summary on the page"
    return match.group(0)


def _assert_summary_links_to_fields(html: str) -> list[str]:
    """The summary comes before the page's heading, and each of its links names a field on the page."""
    summary = _summary(html)
    assert html.index("data-error-summary") < html.index("<h1")
    anchors = re.findall(r'href="#([^"]+)"', summary)
    assert anchors, summary
    for anchor in anchors:
        assert re.search(rf'id="{re.escape(anchor)}"', html), f"#{anchor} names no element"
    return anchors


# --- Error summaries ------------------------------------------------------------------------------


def test_a_failed_sso_save_opens_with_a_summary_linking_to_the_acs_field(admin_client):
    connector = _twingate()
    data = {
        "action": "save",
        "sp_entity_id": "https://acme.twingate.com/auth/saml/metadata",
        "sp_login_url": "",
        "slo_url": "",
        "nameid_format": "email",
        "nameid_property": "email",
        "sign": "both",
        "signature_algorithm": "rsa-sha256",
        "digest_algorithm": "sha256",
        "assertion_lifetime_seconds": "300",
        "session_lifetime_seconds": "28800",
        "acs-TOTAL_FORMS": "1",
        "acs-INITIAL_FORMS": "0",
        "acs-0-url": "http://acme.twingate.com/auth/saml/callback",
        "acs-0-binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        "acs-0-index": "",
    }
    response = admin_client.post(f"/console/connectors/{connector.slug}/sso/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert _assert_summary_links_to_fields(html) == ["id_acs-0-url"]
    assert "https" in _summary(html)


ERROR_CASES = [
    ("user_create", "/console/users/new/", {"username": "", "status": "active"}, "id_username"),
    ("group_create", "/console/groups/new/", {"name": ""}, "id_name"),
    ("scim_token_create", "/console/tokens/scim/new/", {"name": "", "scope": "read_write"}, "id_name"),
    ("api_token_create", "/console/tokens/api/new/", {"name": "x", "expires_in_days": "-3"}, None),
    ("key_generate_next", "/console/keys/next", {"key_size": "1", "validity_days": "0"}, "id_key_size"),
    ("settings", "/console/settings/", {"password_min_length": "-1"}, "id_password_min_length"),
    ("settings_upstream_create", "/console/settings/upstreams/new/", {"name": ""}, "id_name"),
    ("connector_create", "/console/connectors/new/twingate/", {"name": ""}, "id_name"),
]


@pytest.mark.parametrize(("name", "url", "data", "first_anchor"), ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_every_form_page_opens_on_a_linked_error_summary(super_client, name, url, data, first_anchor):
    response = super_client.post(url, data)
    assert response.status_code == 400, response.status_code
    anchors = _assert_summary_links_to_fields(response.content.decode())
    if first_anchor:
        assert anchors[0] == first_anchor


def test_forms_of_the_connector_tabs_open_on_their_summary(admin_client):
    connector = _twingate()
    base = f"/console/connectors/{connector.slug}"
    general = admin_client.post(f"{base}/general/", {"name": ""})
    assert _assert_summary_links_to_fields(general.content.decode()) == ["id_name"]
    identity = admin_client.post(f"{base}/identity/", {"base_url": "ftp://nowhere", "deprovision": "deactivate"})
    assert identity.status_code == 400
    _assert_summary_links_to_fields(identity.content.decode())
    metadata = admin_client.post(f"{base}/sso/metadata/", {"url": "not a url"})
    assert _assert_summary_links_to_fields(metadata.content.decode()) == ["id_url"]


def test_a_mapping_error_in_a_row_links_to_that_row(admin_client):
    connector = _twingate()
    rows = {
        "action": "save",
        "scim_user-TOTAL_FORMS": "2",
        "scim_user-INITIAL_FORMS": "2",
        "scim_user-0-source": "username",
        "scim_user-0-target": "userName",
        "scim_user-1-source": "nosuchproperty",
        "scim_user-1-target": "title",
    }
    response = admin_client.post(f"/console/connectors/{connector.slug}/mappings/", rows)
    assert response.status_code == 400
    html = response.content.decode()
    assert _assert_summary_links_to_fields(html) == ["id_scim_user-1-source"]
    assert "SCIM user attributes: Directory property (row 2)" in _summary(html)


def test_filters_with_errors_say_so_at_the_top(super_client):
    response = super_client.get("/console/audit/", {"since": "07/12/2026"})
    assert response.status_code == 400
    assert _assert_summary_links_to_fields(response.content.decode()) == ["id_since"]


def test_the_reauthentication_prompt_has_its_summary(db):
    from tests.console.conftest import console_client, make_staff

    staff = make_staff("super_admin", "again.admin")
    client = console_client(staff)
    response = client.post("/console/confirm/", {"secret": "wrong"})
    assert response.status_code == 400
    assert _assert_summary_links_to_fields(response.content.decode()) == ["id_secret"]


# Pages whose forms another change is rewriting (the Provisioning tab's filters).
_SUMMARY_EXEMPT = {"connectors/provisioning.html"}


def test_every_console_template_with_form_fields_fills_the_error_summary():
    missing = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = str(path.relative_to(TEMPLATES))
        text = path.read_text()
        renders_fields = re.search(r"\{% field |management_form|_filter_select\.html", text)
        if path.name.startswith("_") or name in _SUMMARY_EXEMPT or not renders_fields:
            continue
        if not re.search(r"\{% block error_summary %\}\{% form_errors [^%]+%\}\{% endblock %\}", text):
            missing.append(name)
    assert not missing, f"forms without the error summary at the top: {missing}"


def test_the_summary_lists_a_formsets_rows_and_a_choice_groups_first_choice():
    from apps.console.forms import connectors as forms

    formset = forms.AcsFormSet(
        {"acs-TOTAL_FORMS": "2", "acs-INITIAL_FORMS": "2", "acs-0-binding": "nope", "acs-1-url": "x"},
        prefix="acs",
    )
    identity = forms.IdentityForm({"operations": ["nope"]}, token_is_set=False)
    html = Template("{% load console %}{% form_errors identity formset %}").render(
        Context({"identity": identity, "formset": formset})
    )
    assert 'href="#id_operations_0"' in html  # checkboxes: the first of the group
    assert 'href="#id_acs-0-binding"' in html and "Binding (row 1)" in html
    assert 'href="#id_acs-1-binding"' in html and "Binding (row 2)" in html


def test_no_summary_when_nothing_is_wrong():
    html = Template("{% load console %}{% form_errors form %}").render(Context({"form": None}))
    assert html.strip() == ""


# --- Assignments: browse without typing -------------------------------------------------------------


def test_assignments_list_groups_with_member_counts_and_users_without_a_search(admin_client):
    connector = _twingate()
    engineering = GroupFactory(name="Engineering", members=[UserFactory(), UserFactory(), UserFactory()])
    GroupFactory(name="Sales", members=[UserFactory()])
    connector_services.assignment_create(actor=None, connector=connector, group=engineering)
    page = admin_client.get(f"/console/connectors/{connector.slug}/assignments/").content.decode()
    picker = page[page.index('id="assignment-search"') :]
    assert re.search(r"<td>Engineering</td><td class=\"c-num\">3</td>\s*<td><span class=\"c-muted\">Assigned", picker)
    assert re.search(r"<td>Sales</td><td class=\"c-num\">1</td>", picker)
    assert 'aria-label="Assign group Sales"' in picker
    assert 'Groups <span class="c-muted">(2)</span>' in picker
    assert "Has it through a group" in picker  # Engineering's members, not assigned themselves


def test_assignable_lists_page_through_the_directory():
    connector = _twingate()
    people = [UserFactory(username=f"person{n:02d}") for n in range(25)]
    first = selectors.assignable_users_page(connector, search="", number=1, size=20)
    second = selectors.assignable_users_page(connector, search="", number=2, size=20)
    assert first.paginator.count == 25 and second.has_previous() and not second.has_next()
    assert {user.pk for user in [*first.object_list, *second.object_list]} == {person.pk for person in people}
    found = selectors.assignable_users_page(connector, search="person1", number=1, size=20)
    assert [user.username for user in found.object_list] == [f"person{n}" for n in range(10, 20)]


@pytest.mark.parametrize("size", [3, 40])
def test_assignable_lists_cost_the_same_queries_however_big(size, django_assert_max_num_queries):
    connector = _twingate()
    groups = [GroupFactory(members=[UserFactory() for _ in range(2)]) for _ in range(size)]
    connector_services.assignment_create(actor=None, connector=connector, group=groups[0])
    connector_services.assignment_create(actor=None, connector=connector, user=UserFactory())
    with django_assert_max_num_queries(5):
        users = selectors.assignable_users_page(connector, search="", number=1, size=200)
        assert [user.assigned for user in users.object_list].count(True) == 1
        assert [user.via_group for user in users.object_list].count(True) == 2
        list(users.object_list[0].groups.all())  # prefetched
    with django_assert_max_num_queries(4):
        page = selectors.assignable_groups_page(connector, search="", number=1, size=50)
        assert all(group.member_count == 2 for group in page.object_list)
        assert [group.assigned for group in page.object_list].count(True) == 1


def test_the_assignments_page_costs_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries):
    connector = _twingate()
    url = f"/console/connectors/{connector.slug}/assignments/"
    GroupFactory(members=[UserFactory()])
    admin_client.get(url)
    with django_assert_max_num_queries(40) as few:
        admin_client.get(url)
    for _ in range(30):
        GroupFactory(members=[UserFactory(), UserFactory()])
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(url)
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(url, {"upage": "2", "gpage": "2"})


# --- SSO tab: what the app's values look like, the certificate to download, no empty boxes ---------


def test_the_sso_tab_shows_the_templates_hints(admin_client):
    connector = _twingate()
    html = admin_client.get(f"/console/connectors/{connector.slug}/sso/").content.decode()
    assert 'placeholder="https://&lt;network&gt;.twingate.com/auth/saml/metadata"' in html
    assert 'placeholder="https://&lt;network&gt;.twingate.com/auth/saml/callback"' in html
    assert "Twingate's ACS URL looks like <code>https://&lt;network&gt;.twingate.com/auth/saml/callback</code>" in html
    assert "Twingate&#x27;s looks like https://&lt;network&gt;.twingate.com/auth/saml/metadata" in html


def test_a_template_without_hints_shows_none(admin_client):
    connector = connector_services.connector_create(actor=None, template="generic-saml", name="Any app")
    html = admin_client.get(f"/console/connectors/{connector.slug}/sso/").content.decode()
    assert "looks like" not in html and "&lt;network&gt;" not in html


def test_the_sso_tab_offers_the_signing_certificate_as_a_pem_download(admin_client):
    connector = _twingate()
    html = admin_client.get(f"/console/connectors/{connector.slug}/sso/").content.decode()
    [key] = published_keys(connector)
    link = f'href="/console/keys/{key.pk}/certificate.pem" download'
    assert link in html
    download = admin_client.get(f"/console/keys/{key.pk}/certificate.pem")
    assert download.status_code == 200
    assert download.content.decode() == key.certificate_pem
    assert download["Content-Disposition"].startswith("attachment;") and ".pem" in download["Content-Disposition"]


def test_the_sso_tab_has_no_ten_row_boxes(admin_client):
    connector = _twingate()
    html = admin_client.get(f"/console/connectors/{connector.slug}/sso/").content.decode()
    rows = [int(value) for value in re.findall(r'<textarea[^>]* rows="(\d+)"', html)]
    assert rows and max(rows) <= 3
    css = (Path(settings.BASE_DIR) / "static" / "console" / "console.css").read_text()
    assert re.search(r"\.c-field textarea \{[^}]*field-sizing: content", css)
    # The certificate is a click away, not a 20-line block in the way.
    assert re.search(r"<details><summary>Show the certificate</summary><pre id=\"idp-cert-1\">", html)


# --- The mapping tab never drops what was typed ----------------------------------------------------


def _table_post(prefix: str, rows: list[tuple[str, str, str]]) -> dict:
    data = {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": str(len(rows))}
    for n, (source, target, name_format) in enumerate(rows):
        data.update({f"{prefix}-{n}-source": source, f"{prefix}-{n}-target": target})
        data[f"{prefix}-{n}-name_format"] = name_format
    return data


def _mapping_post(connector) -> dict:
    data = {}
    for kind in ("scim_user", "scim_group", "saml"):
        rows = [(m.source, m.target, "") for m in selectors.mapping_list(connector, kind)]
        data.update(_table_post(kind, rows))
    return data


def test_save_and_continue_saves_every_table_then_goes_to_assignments(admin, admin_client):
    connector = _twingate()
    data = _mapping_post(connector)
    data["scim_user-1-target"] = "title"  # was the work email
    data["saml-0-target"] = "mail"  # was email
    data["action"] = "save"
    response = admin_client.post(f"/console/connectors/{connector.slug}/mappings/?wizard=1", data)
    assert response.status_code == 302
    assert response["Location"] == f"/console/connectors/{connector.slug}/assignments/?wizard=1"
    assert connector.mappings.filter(kind="scim_user", target="title").exists()
    assert connector.mappings.filter(kind="saml", target="mail").exists()
    assert AuditEvent.objects.filter(actor=admin, action="connector.mappings.replace").count() == 2


def test_the_wizard_continues_with_a_save_not_a_bare_link(admin_client):
    connector = _twingate()
    html = admin_client.get(f"/console/connectors/{connector.slug}/mappings/?wizard=1").content.decode()
    assert re.search(r'<button type="submit" name="action" value="save" class="c-btn c-btn-primary">'
                     r"Save and continue to Assignments</button>", html)  # fmt: skip
    assert ">Continue to Assignments</a>" not in html
    assert 'data-unsaved-guard="unsaved-mapping"' in html and '<dialog id="unsaved-mapping"' in html


def test_one_refused_table_saves_none(admin_client):
    connector = _twingate()
    before = list(connector.mappings.order_by("kind", "position").values_list("kind", "target"))
    data = {**_mapping_post(connector), "action": "save", "saml-0-target": "mail"}
    data["scim_user-0-target"] = "notAnAttribute"  # refused by the service
    response = admin_client.post(f"/console/connectors/{connector.slug}/mappings/", data)
    assert response.status_code == 400
    assert list(connector.mappings.order_by("kind", "position").values_list("kind", "target")) == before
    assert 'value="mail"' in response.content.decode()  # what was typed is still there


def test_adding_a_row_keeps_the_other_tables_typed_edits(admin_client):
    connector = _twingate()
    data = {**_mapping_post(connector), "action": "add:scim_group", "saml-0-target": "mail"}
    response = admin_client.post(f"/console/connectors/{connector.slug}/mappings/", data)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="mail"' in html and 'data-unsaved="true"' in html
    assert "Not saved yet" in html
    table = next(table for table in response.context["tables"] if table["kind"] == "scim_group")
    assert table["formset"].total_form_count() == 3
    assert not connector.mappings.filter(target="mail").exists()


def test_resetting_one_table_keeps_the_other_tables_typed_edits(admin_client):
    connector = _twingate()
    connector_services.mappings_replace(
        actor=None, connector=connector, kind="scim_group", rows=[{"source": "name", "target": "displayName"}]
    )
    data = {**_mapping_post(connector), "action": "reset:scim_group", "saml-0-target": "mail"}
    response = admin_client.post(f"/console/connectors/{connector.slug}/mappings/", data)
    assert response.status_code == 200
    assert connector.mappings.filter(kind="scim_group", target="members").exists()  # reset and saved
    assert 'value="mail"' in response.content.decode()  # the SAML edit, shown and not lost
    assert not connector.mappings.filter(kind="saml", target="mail").exists()


def test_saving_from_the_leave_dialog_goes_where_the_admin_was_going(admin_client):
    connector = _twingate()
    data = {**_mapping_post(connector), "action": "save", "next": f"/console/connectors/{connector.slug}/activate/"}
    response = admin_client.post(f"/console/connectors/{connector.slug}/mappings/", data)
    assert response["Location"] == f"/console/connectors/{connector.slug}/activate/"
    for elsewhere in ("https://evil.example.com/", "//evil.example.com/console/", "/admin/"):
        response = admin_client.post(f"/console/connectors/{connector.slug}/mappings/", {**data, "next": elsewhere})
        assert response["Location"] == f"/console/connectors/{connector.slug}/mappings/"


# --- URLs and dates that wrap well -------------------------------------------------------------------


def test_a_url_wraps_only_after_a_slash_and_copies_unchanged():
    html = Template("{% load console %}{{ url|url_text }}").render(
        Context({"url": "https://acme-corp.twingate.com/auth/saml?x=1&y=<2>"})
    )
    assert html == (
        '<span class="c-url"><span>https://</span><wbr><span>acme-corp.twingate.com/</span><wbr>'
        "<span>auth/</span><wbr><span>saml</span><wbr><span>?x=1</span><wbr><span>&amp;y=&lt;2&gt;</span></span>"
    )
    assert re.sub(r"<[^>]+>", "", html) == "https://acme-corp.twingate.com/auth/saml?x=1&amp;y=&lt;2&gt;"


def test_connector_urls_on_the_overview_are_wrapped_pieces(admin_client):
    connector = _twingate(sp_entity_id="https://acme.twingate.com/auth/saml/metadata")
    html = admin_client.get(f"/console/connectors/{connector.slug}/").content.decode()
    assert "<span>acme.twingate.com/</span><wbr><span>auth/</span>" in html


def test_the_audit_log_shows_each_time_on_one_line(super_client):
    html = super_client.get("/console/audit/").content.decode()
    times = re.findall(r"<time [^>]*>(.*?)</time>", html, re.S)
    assert times and all("<br" not in time for time in times)
    css = (Path(settings.BASE_DIR) / "static" / "console" / "console.css").read_text()
    assert re.search(r"^time \{ white-space: nowrap; \}", css, re.M)


def test_end_users_never_reach_the_assignments_browse(client):
    user = UserFactory(password="s3cret-Pass-99")
    TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    connector = _twingate()
    client.force_login(user, backend="apps.portal.backends.PortalBackend")
    response = client.get(f"/console/connectors/{connector.slug}/assignments/", {"gpage": str(uuid.uuid4())})
    assert response.status_code in (302, 403)
