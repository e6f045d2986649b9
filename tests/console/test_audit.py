"""The audit log page: filters, CSV export, and who may read it."""

import csv
import io

import pytest

from apps.audit.services import audit_record
from apps.directory import services as directory
from tests.factories import UserFactory


def _export(client, query: str = "") -> list[list[str]]:
    response = client.get(f"/console/audit/export.csv{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_filters_by_actor_action_and_target(db, admin, admin_client):
    jane = UserFactory(username="jane.doe")
    directory.user_update(actor=admin, user=jane, first_name="Janet")
    directory.user_suspend(actor=admin, user=jane)
    page = admin_client.get("/console/audit/?actor=admin.adm&action=user.suspend&target=jane")
    assert page.status_code == 200
    events = list(page.context["events"])
    assert [event.action for event in events] == ["user.suspend"]
    assert events[0].actor == admin


def test_action_prefix_and_dates(db, admin, admin_client):
    UserFactory(username="bob")
    page = admin_client.get("/console/audit/?action=user&since=2000-01-01&until=2999-12-31")
    assert {event.action for event in page.context["events"]} >= {"user.create"}
    bad = admin_client.get("/console/audit/?since=2020-02-02&until=2020-01-01")
    assert bad.status_code == 400
    assert "before the start date" in bad.content.decode()
    assert admin_client.get("/console/audit/?since=yesterday").status_code == 400


def test_empty_state(db, readonly_client):
    response = readonly_client.get("/console/audit/?action=nothing.matches")
    assert "Nothing matches these filters" in response.content.decode()


def test_csv_export_follows_the_filters_and_defuses_formulas(db, admin, admin_client):
    UserFactory(username="plain")
    # A target label an attacker chose (e.g. a display name set over SCIM) must not run in a spreadsheet.
    audit_record(actor=admin, action="test.formula", target=None, after={"note": "x"})
    from apps.audit.models import AuditEvent

    AuditEvent.objects.filter(action="test.formula").update(target_label='=HYPERLINK("http://evil")')
    rows = _export(admin_client, "?action=test.formula")
    header = rows[0]
    assert header[:5] == ["id", "time", "actor", "actor_id", "action"]
    assert len(rows) == 2
    assert rows[1][header.index("target")] == '\'=HYPERLINK("http://evil")'
    assert rows[1][header.index("after")] == '{"note": "x"}'  # JSON, not a Python repr
    everything = _export(admin_client)
    assert any(row[header.index("action")] == "user.create" for row in everything[1:])


def test_help_desk_cannot_read_the_audit_log(db, helpdesk_client):
    assert helpdesk_client.get("/console/audit/").status_code == 403
    assert helpdesk_client.get("/console/audit/export.csv").status_code == 403


def test_list_has_a_fixed_number_of_queries(db, admin, admin_client, django_assert_max_num_queries):
    for n in range(60):
        UserFactory(username=f"u{n}")
    with django_assert_max_num_queries(12):
        response = admin_client.get("/console/audit/")
    assert len(response.context["events"]) == 50


# --- Readable for a security team (issue 14) ------------------------------------------------------


def test_a_change_reads_as_before_and_after_not_a_python_repr(db, admin, admin_client):
    jane = UserFactory(username="jane.doe", first_name="Jane")
    directory.user_update(actor=admin, user=jane, first_name="Janet")
    directory.user_suspend(actor=admin, user=jane)

    html = admin_client.get("/console/audit/?target=jane").content.decode()

    assert "<dt>first_name</dt><dd><del>Jane</del> → <ins>Janet</ins></dd>" in html
    assert "<dt>status</dt><dd><del>active</del> → <ins>suspended</ins></dd>" in html
    assert "{&#x27;" not in html and "{'" not in html  # no dict repr anywhere
    assert f'<a href="/console/users/{jane.pk}/">jane.doe</a>' in html


def test_targets_link_to_their_page_only_while_they_exist(db, admin, admin_client):
    from tests.factories import GroupFactory

    group = GroupFactory(name="Engineering")
    directory.group_update(actor=admin, group=group, description="Builds things")
    gone = UserFactory(username="gone.user")
    directory.user_delete(actor=admin, user=gone)

    html = admin_client.get("/console/audit/").content.decode()

    assert f'<a href="/console/groups/{group.pk}/">Engineering</a>' in html
    assert "gone.user" in html and f"/console/users/{gone.pk}/" not in html


def test_nested_settings_read_as_dotted_fields(db, admin, admin_client):
    audit_record(
        actor=admin,
        action="connector.sso.update",
        target=None,
        target_label="Twingate",
        before={"sso": {"sign": "response"}},
        after={"sso": {"sign": "both"}},
    )
    html = admin_client.get("/console/audit/?action=connector.sso.update").content.decode()
    assert "<dt>sso.sign</dt><dd><del>response</del> → <ins>both</ins></dd>" in html


def test_json_lines_export_has_the_documented_fields_and_objects(db, admin, admin_client):
    import json

    from apps.audit.presentation import EXPORT_FIELDS

    jane = UserFactory(username="jane.doe")
    directory.user_update(actor=admin, user=jane, first_name="Janet")

    response = admin_client.get("/console/audit/export.jsonl?action=user.update")

    assert response.streaming and response["Content-Type"].startswith("application/x-ndjson")
    lines = b"".join(response.streaming_content).decode().splitlines()
    [record] = [json.loads(line) for line in lines]
    assert list(record) == list(EXPORT_FIELDS)
    assert record["action"] == "user.update" and record["actor"] == admin.username
    assert record["actor_id"] == str(admin.pk) and record["target_id"] == str(jane.pk)
    assert record["after"]["first_name"] == "Janet"  # an object, not text


def test_dates_are_iso_text_fields_not_the_browsers_locale_picker(db, admin_client):
    html = admin_client.get("/console/audit/").content.decode()
    assert 'type="date"' not in html
    assert 'placeholder="YYYY-MM-DD"' in html


def test_dashboard_recent_admin_actions_leave_out_end_users_sign_ins(db, admin, admin_client):
    jane = UserFactory(username="jane.doe")
    audit_record(actor=jane, action="saml.sso.success", target=None, target_label="Twingate")
    audit_record(actor=jane, action="portal.login.success", target=jane)
    directory.user_suspend(actor=admin, user=jane)

    actions = [event.action for event in admin_client.get("/console/").context["recent_actions"]]

    assert "user.suspend" in actions
    assert "saml.sso.success" not in actions and "portal.login.success" not in actions


def test_the_page_shows_the_retention(db, readonly_client, settings):
    settings.AUDIT_RETENTION_DAYS = 0
    assert "Events are kept forever" in readonly_client.get("/console/audit/").content.decode()
    settings.AUDIT_RETENTION_DAYS = 400
    page = readonly_client.get("/console/audit/").content.decode()
    assert "Events are kept for 400 days: older ones are deleted every hour" in page


def test_a_log_larger_than_the_count_cap_pages_without_a_total(db, admin, admin_client, monkeypatch, settings):
    from apps.common import paging

    monkeypatch.setattr(paging, "COUNT_CAP", 3)
    settings.CONSOLE_PAGE_SIZE = 2
    for n in range(6):
        audit_record(actor=admin, action="test.capped", target_label=f"t{n}")

    first = admin_client.get("/console/audit/?action=test.capped")
    assert [event.target_label for event in first.context["events"]] == ["t5", "t4"]
    assert first.context["page_obj"].paginator.count is None  # more than 3: not counted
    html = first.content.decode()
    assert "Page 1</span>" in html and "Page 1 of" not in html and 'rel="next"' in html
    third = admin_client.get("/console/audit/?action=test.capped&page=3")
    assert [event.target_label for event in third.context["events"]] == ["t1", "t0"]
    assert not third.context["page_obj"].has_next()
    past = admin_client.get("/console/audit/?action=test.capped&page=9")
    assert past.context["events"] == []  # past the end of an uncounted log: an empty page, not an error


def test_name_filters_find_accounts_groups_and_connectors_and_else_an_exact_label(db, admin, admin_client):
    from apps.connectors import services as connector_services
    from tests.factories import GroupFactory

    sales = GroupFactory(name="Sales EMEA")
    directory.group_update(actor=admin, group=sales, description="Sellers")
    app = connector_services.connector_create(actor=admin, template="generic-scim", name="Sales Tool")
    gone = UserFactory(username="gone.person")
    directory.user_update(actor=gone, user=gone, first_name="Gone")
    directory.user_delete(actor=admin, user=gone)

    by_target = admin_client.get("/console/audit/?target=sales").context["events"]
    assert {(event.target_type, event.target_id) for event in by_target} == {
        ("directory.group", str(sales.pk)),
        ("connectors.connector", str(app.pk)),
    }
    by_deleted_actor = admin_client.get("/console/audit/?actor=gone.person").context["events"]
    assert [event.action for event in by_deleted_actor] == ["user.update"]
    assert admin_client.get("/console/audit/?actor=gone.pers").context["events"] == []  # no account, no exact label


@pytest.mark.django_db(transaction=True)
def test_the_export_streams_from_a_cursor_without_hold(admin_client):
    """Outside a transaction Django declares its cursor WITH HOLD, and PostgreSQL materializes the
    whole result before the first row: the export keeps its own transaction open instead."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("server-side cursors are PostgreSQL's")
    audit_record(actor=None, action="test.streamed", target_label="row")
    response = admin_client.get("/console/audit/export.jsonl?action=test.streamed")
    with CaptureQueriesContext(connection) as queries:
        body = b"".join(response.streaming_content)
    assert body.count(b"\n") == 1
    declares = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("DECLARE")]
    assert declares and all("WITH HOLD" not in sql for sql in declares)
