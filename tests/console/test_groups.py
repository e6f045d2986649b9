"""The console's Groups pages: list, create, edit, delete, members, CSV import and removal impact."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.directory import imports
from apps.directory import services as directory
from apps.directory.models import Group, GroupImportJob, ImportStatus, Membership
from apps.directory.tasks import group_import_run
from apps.provisioning.models import ObjectType, RemoteObject
from tests.conftest import wait_for
from tests.console.conftest import console_client, make_staff
from tests.console.test_users import assign, last_event, make_connector, provisioned
from tests.factories import GroupFactory, UserFactory


def csv_upload(text: str, name: str = "members.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


# --- List --------------------------------------------------------------------------------------


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_list_shows_member_counts_with_a_fixed_number_of_queries(db, readonly_client, django_assert_max_num_queries):
    people = [UserFactory(username=f"p{n}") for n in range(6)]
    GroupFactory(name="Alpha", members=people[:4])
    GroupFactory(name="Beta", members=people[4:])
    few = _queries(readonly_client, "/console/groups/")
    for n in range(60):
        GroupFactory(name=f"Team {n:02}", members=people[: n % 5])
    many = _queries(readonly_client, "/console/groups/")
    assert many <= few  # the first request also fills the settings cache
    response = readonly_client.get("/console/groups/")
    counts = {group.name: group.member_count for group in response.context["groups"]}
    assert counts["Alpha"] == 4 and counts["Beta"] == 2 and counts["Team 03"] == 3
    assert len(counts) == 50
    searched = readonly_client.get("/console/groups/?q=alp")
    assert [group.name for group in searched.context["groups"]] == ["Alpha"]
    assert "New group" not in searched.content.decode()


def test_empty_states(db, admin_client):
    assert "No groups yet" in admin_client.get("/console/groups/").content.decode()
    assert "No group matches" in admin_client.get("/console/groups/?q=zzz").content.decode()


# --- Create, edit ------------------------------------------------------------------------------


def test_create_edit_and_duplicate_name(db, helpdesk, helpdesk_client):
    response = helpdesk_client.post("/console/groups/new/", {"name": "Designers", "description": "Figma people"})
    group = Group.objects.get(name="Designers")
    assert response.status_code == 302 and response["Location"] == f"/console/groups/{group.pk}/"
    assert last_event("group.create").actor == helpdesk
    GroupFactory(name="Engineering")
    duplicate = helpdesk_client.post("/console/groups/new/", {"name": "engineering"})
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.context["form"].errors["name"][0]
    assert Group.objects.filter(name__iexact="engineering").count() == 1
    renamed = helpdesk_client.post(f"/console/groups/{group.pk}/edit/", {"name": "Design", "description": ""})
    assert renamed.status_code == 302
    group.refresh_from_db()
    assert group.name == "Design"
    event = last_event("group.rename")
    assert event.actor == helpdesk and event.after["name"] == "Design"
    clash = helpdesk_client.post(f"/console/groups/{group.pk}/edit/", {"name": "ENGINEERING"})
    assert clash.status_code == 400 and "already exists" in clash.context["form"].errors["name"][0]
    empty = helpdesk_client.post(f"/console/groups/{group.pk}/edit/", {"name": ""})
    assert empty.status_code == 400 and empty.context["form"].errors["name"]


def test_read_only_gets_403_on_every_post(db, readonly_client):
    group = GroupFactory(name="Locked")
    person = UserFactory(username="person")
    base = f"/console/groups/{group.pk}"
    assert readonly_client.get(f"{base}/").status_code == 200
    for url in (
        "/console/groups/new/",
        f"{base}/edit/",
        f"{base}/delete/",
        f"{base}/members/add/",
        f"{base}/members/remove/",
        f"{base}/members/import/",
    ):
        assert readonly_client.post(url, {"name": "x", "user": str(person.pk)}).status_code == 403, url
    assert readonly_client.get(f"{base}/members/search/?q=per").status_code == 403
    assert Group.objects.filter(pk=group.pk, name="Locked").exists()
    assert not Membership.objects.exists()


def test_csrf_is_required(db, admin):
    group = GroupFactory(name="Guarded")
    client = console_client(admin)
    client.handler.enforce_csrf_checks = True
    assert client.post(f"/console/groups/{group.pk}/delete/").status_code == 403
    assert Group.objects.filter(pk=group.pk).exists()


# --- Members -----------------------------------------------------------------------------------


def test_add_by_search_and_remove(db, admin, admin_client):
    group = GroupFactory(name="Support")
    member = UserFactory(username="already.in", first_name="Anna")
    directory.group_add_members(actor=None, group=group, users=[member])
    candidate = UserFactory(username="anna.new", first_name="Anna")
    url = f"/console/groups/{group.pk}/members/search/"
    short = admin_client.get(url, {"q": "a"}, headers={"HX-Request": "true"})
    assert "at least 2 characters" in short.content.decode()
    found = admin_client.get(url, {"q": "anna"}, headers={"HX-Request": "true"})
    assert [user.username for user in found.context["matches"]] == ["anna.new"]
    assert 'aria-label="Add anna.new"' in found.content.decode()

    added = admin_client.post(f"/console/groups/{group.pk}/members/add/", {"user": str(candidate.pk)}, follow=True)
    assert "anna.new was added to Support" in added.content.decode()
    assert Membership.objects.filter(group=group, user=candidate).exists()
    event = last_event("group.members.add")
    assert event.actor == admin and event.after["added"][0]["username"] == "anna.new"

    removed = admin_client.post(f"/console/groups/{group.pk}/members/remove/", {"user": str(member.pk)}, follow=True)
    assert "already.in was removed from Support" in removed.content.decode()
    assert not Membership.objects.filter(group=group, user=member).exists()
    assert last_event("group.members.remove").actor == admin
    garbage = admin_client.post(f"/console/groups/{group.pk}/members/add/", {"user": "not-a-uuid"}, follow=True)
    assert "no longer exists" in garbage.content.decode()


def test_members_are_paginated_with_fixed_queries(db, admin_client, django_assert_max_num_queries):
    group = GroupFactory(name="Big")
    directory.group_add_members(actor=None, group=group, users=[UserFactory(username=f"m{n:02}") for n in range(5)])
    few = _queries(admin_client, f"/console/groups/{group.pk}/")
    directory.group_add_members(actor=None, group=group, users=[UserFactory(username=f"n{n:02}") for n in range(60)])
    assert _queries(admin_client, f"/console/groups/{group.pk}/") <= few
    second = admin_client.get(f"/console/groups/{group.pk}/?page=2")
    assert len(second.context["members"]) == 15
    assert second.context["page_obj"].paginator.count == 65


# --- What removing or deleting the group would deprovision -------------------------------------


def test_detail_and_delete_name_what_would_be_deprovisioned(db, admin, admin_client):
    only_here = UserFactory(username="only.here")
    also_direct = UserFactory(username="also.direct")
    also_other_group = UserFactory(username="also.other")
    not_provisioned = UserFactory(username="not.provisioned")
    group = GroupFactory(name="Contractors", members=[only_here, also_direct, also_other_group, not_provisioned])
    other = GroupFactory(name="Staff", members=[also_other_group])
    deleting = make_connector("Jira", deprovision="delete")
    assign(deleting, group=group)
    assign(deleting, user=also_direct)
    assign(deleting, group=other)
    for person in (only_here, also_direct, also_other_group):
        provisioned(deleting, person, remote_id=f"jira-{person.username}")
    RemoteObject.objects.update_or_create(
        connector=deleting, object_type=ObjectType.GROUP, object_id=group.pk, defaults={"remote_id": "g-1"}
    )
    sso_only = make_connector("Wiki", provisioning=False)
    assign(sso_only, group=group)

    detail = admin_client.get(f"/console/groups/{group.pk}/")
    impacts = {impact.connector.name: impact for impact in detail.context["impacts"]}
    jira = impacts["Jira"]
    assert [user.username for user in jira.losing_access_sample] == ["not.provisioned", "only.here"]
    assert jira.deprovisioned_count == 1 and jira.step.deletes and jira.group_pushed
    assert impacts["Wiki"].step is None and impacts["Wiki"].losing_access_count == 4
    html = " ".join(detail.content.decode().split())
    assert "Deleted</span> 1 account in the app." in html and "The group itself is deleted in the app" in html
    # Two members lose access, one has an account there: the page says what happens to each.
    assert "1 of the 2 never had an account there: nothing is sent about that one." in html
    assert "Identity Management is off" in html

    confirm = admin_client.get(f"/console/groups/{group.pk}/delete/")
    page = " ".join(confirm.content.decode().split())
    assert "Delete the group Contractors?" in page and "1 account in the app" in page and "only.here" in page
    assert Group.objects.filter(pk=group.pk).exists()
    done = admin_client.post(f"/console/groups/{group.pk}/delete/")
    assert done.status_code == 302 and done["Location"] == "/console/groups/"
    assert not Group.objects.filter(pk=group.pk).exists()
    event = last_event("group.delete")
    assert event.actor == admin and len(event.before["members"]) == 4


# --- Bulk add by CSV ---------------------------------------------------------------------------


def test_parse_accepts_lines_or_a_column_and_reports_bad_files():
    assert imports.parse_member_csv(b"alice\n\nbob@example.com\n") == [(1, "alice"), (3, "bob@example.com")]
    with_header = b"\xef\xbb\xbfname,Email\nAlice,alice@example.com\nNobody,\nBob,bob@example.com\n"
    assert imports.parse_member_csv(with_header) == [(2, "alice@example.com"), (4, "bob@example.com")]
    both = b"username,email\nalice,\n,bob@example.com\n"
    assert imports.parse_member_csv(both) == [(2, "alice"), (3, "bob@example.com")]
    for content, message in ((b"\xff\xfe\x00", "not UTF-8"), (b"\n\n", "names no users")):
        with pytest.raises(Exception) as caught:
            imports.parse_member_csv(content)
        assert message in caught.value.message_dict["file"][0]


def test_import_reports_unknown_rows_by_line_and_progress_partial(
    db, admin, admin_client, django_capture_on_commit_callbacks
):
    group = GroupFactory(name="Imported")
    alice = UserFactory(username="alice", email="alice@example.com")
    bob = UserFactory(username="Bob", email="bob@example.com")
    carol = UserFactory(username="carol", email="carol@example.com")
    directory.group_add_members(actor=None, group=group, users=[carol])
    content = "email\nALICE@example.com\nghost@example.com\nbob\ncarol\n\nnobody\n"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(f"/console/groups/{group.pk}/members/import/", {"file": csv_upload(content)})
    assert response.status_code == 302
    assert len(callbacks) == 1  # the task is enqueued only after the job row commits
    job = GroupImportJob.objects.get(group=group)
    assert job.total_rows == 5 and job.status == ImportStatus.PENDING and job.created_by == admin

    status_url = f"/console/groups/{group.pk}/members/import/{job.pk}/"
    polling = admin_client.get(status_url, headers={"HX-Request": "true"})
    html = polling.content.decode()
    assert 'hx-trigger="every 1s"' in html and "0 of 5 rows" in html

    group_import_run.run(str(job.pk))  # the task's own code, in this process
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    assert (job.added_count, job.already_member_count) == (2, 1)
    assert job.unknown_rows == [[3, "ghost@example.com"], [7, "nobody"]] and job.unknown_count == 2
    assert set(Membership.objects.filter(group=group).values_list("user__username", flat=True)) == {
        "alice",
        "Bob",
        "carol",
    }
    done = admin_client.get(status_url, headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in done
    assert "Line 3: ghost@example.com" in done and "Line 7: nobody" in done and "2 added" in done
    assert last_event("group.members.add").actor == admin
    finish = last_event("group.import.finish")
    assert finish.actor == admin and finish.after["unknown"] == 2
    # Without htmx the status URL leads back to the group's page.
    assert admin_client.get(status_url).status_code == 302
    assert alice and bob


def test_import_rejects_a_bad_file_on_the_field(db, admin_client):
    group = GroupFactory(name="Strict")
    response = admin_client.post(
        f"/console/groups/{group.pk}/members/import/", {"file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00")}
    )
    assert response.status_code == 400
    assert "not UTF-8" in response.context["import_form"].errors["file"][0]
    assert not GroupImportJob.objects.exists()
    missing = admin_client.post(f"/console/groups/{group.pk}/members/import/", {})
    assert missing.status_code == 400 and missing.context["import_form"].errors["file"]


def test_a_long_import_resumes_where_it_stopped(db, admin, monkeypatch):
    monkeypatch.setattr(imports, "GROUP_IMPORT_BATCH_SIZE", 7)
    group = GroupFactory(name="Large")
    people = [UserFactory(username=f"bulk{n:04}") for n in range(30)]
    job = imports.group_import_start(
        actor=admin, group=group, filename="big.csv", content="\n".join(p.username for p in people).encode()
    )
    # Out of time after the first batch: that batch is committed and the task asks to carry on.
    assert imports.group_import_process(job.pk, budget_seconds=0) is True
    job.refresh_from_db()
    assert job.processed_rows == 7 and job.status == ImportStatus.RUNNING
    assert imports.group_import_process(job.pk) is False
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and job.added_count == 30
    assert Membership.objects.filter(group=group).count() == 30
    # Running it again (a redelivered task) changes nothing.
    assert imports.group_import_process(job.pk) is False
    assert AuditEvent.objects.filter(action="group.import.finish").count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_import_end_to_end_with_a_real_worker(celery_worker_process):
    admin = make_staff("admin", "import.admin")
    client = console_client(admin)
    group = GroupFactory(name="Worker import")
    for n in range(12):
        UserFactory(username=f"w{n:02}", email=f"w{n:02}@example.com")
    rows = "username\n" + "\n".join(f"w{n:02}" for n in range(12)) + "\nmissing.person\n"
    response = client.post(f"/console/groups/{group.pk}/members/import/", {"file": csv_upload(rows)})
    assert response.status_code == 302
    job = GroupImportJob.objects.get(group=group)
    status_url = f"/console/groups/{group.pk}/members/import/{job.pk}/"

    def finished():
        html = client.get(status_url, headers={"HX-Request": "true"}).content.decode()
        return html if "hx-trigger" not in html else None

    html = wait_for(finished, timeout=60, interval=0.2, message="the worker to finish the import")
    assert "12 added" in html and "Line 14: missing.person" in html
    assert Membership.objects.filter(group=group).count() == 12


def test_a_file_of_unknown_rows_lists_the_first_and_counts_all(db, admin, monkeypatch):
    monkeypatch.setattr(imports, "GROUP_IMPORT_UNKNOWN_KEPT", 3)
    monkeypatch.setattr(imports, "GROUP_IMPORT_BATCH_SIZE", 2)
    group = GroupFactory(name="Typos")
    job = imports.group_import_start(
        actor=admin, group=group, filename="typos.csv", content=b"\n".join(b"nobody%d" % n for n in range(7))
    )
    imports.group_import_process(job.pk)
    job.refresh_from_db()
    assert job.unknown_count == 7 and [row[0] for row in job.unknown_rows] == [1, 2, 3]
    assert job.status == ImportStatus.DONE and job.added_count == 0


# --- Administrators' groups follow the same rule as their accounts --------------------------------


def _members(group: Group) -> set[str]:
    return set(Membership.objects.filter(group=group).values_list("user__username", flat=True))


def test_help_desk_cannot_add_or_remove_administrators_itself_included(db, helpdesk, helpdesk_client, admin):
    from apps.directory.models import AdminRole

    group = GroupFactory(name="Finance apps")
    plain = UserFactory(username="plain")
    add_url, remove_url = f"/console/groups/{group.pk}/members/add/", f"/console/groups/{group.pk}/members/remove/"
    for account in (admin, helpdesk):
        page = helpdesk_client.post(add_url, {"user": str(account.pk)}, follow=True).content.decode()
        assert f"changing these administrators&#x27; accounts or groups: {account.username}." in page
    assert helpdesk_client.post(add_url, {"user": str(plain.pk)}).status_code == 302
    assert _members(group) == {"plain"}

    directory.group_add_members(actor=None, group=group, users=[admin])
    helpdesk_client.post(remove_url, {"user": str(admin.pk)})
    assert _members(group) == {"plain", admin.username}
    assert not AuditEvent.objects.filter(action="group.members.add", actor=helpdesk, after__added__0__id=str(admin.pk))

    # An admin reaches admins but not a super-admin; a super-admin reaches everyone.
    boss = make_staff(AdminRole.SUPER_ADMIN, username="boss")
    admin_client = console_client(admin)
    admin_client.post(add_url, {"user": str(boss.pk)})
    assert "boss" not in _members(group)
    console_client(boss).post(add_url, {"user": str(helpdesk.pk)})
    assert helpdesk.username in _members(group)


def test_help_desk_csv_import_skips_administrators_and_lists_them(db, helpdesk, helpdesk_client, admin):
    group = GroupFactory(name="Imported by help desk")
    UserFactory(username="alice")
    content = f"username\nalice\n{admin.username}\n{helpdesk.username}\n"
    assert (
        helpdesk_client.post(f"/console/groups/{group.pk}/members/import/", {"file": csv_upload(content)}).status_code
        == 302
    )
    job = GroupImportJob.objects.get(group=group)
    group_import_run.run(str(job.pk))
    job.refresh_from_db()
    assert (job.added_count, job.refused_count, job.unknown_count) == (1, 2, 0)
    assert job.refused_rows == [[3, admin.username], [4, helpdesk.username]]
    assert _members(group) == {"alice"}
    status = helpdesk_client.get(
        f"/console/groups/{group.pk}/members/import/{job.pk}/", headers={"HX-Request": "true"}
    ).content.decode()
    assert "2 not allowed" in status and f"Line 3: {admin.username}" in status
    assert last_event("group.import.finish").after["refused_administrators"] == 2


def test_help_desk_cannot_delete_a_group_that_holds_administrators(db, helpdesk, helpdesk_client, admin):
    group = GroupFactory(name="Admins too", members=[UserFactory(username="plain"), admin])
    confirm = helpdesk_client.get(f"/console/groups/{group.pk}/delete/").content.decode()
    assert "Your role cannot delete this group" in confirm and admin.username in confirm
    assert 'class="c-btn c-btn-danger"' not in confirm
    helpdesk_client.post(f"/console/groups/{group.pk}/delete/")
    assert Group.objects.filter(pk=group.pk).exists()

    plain_group = GroupFactory(name="People only", members=[UserFactory(username="someone")])
    assert helpdesk_client.post(f"/console/groups/{plain_group.pk}/delete/").status_code == 302
    assert not Group.objects.filter(pk=plain_group.pk).exists()
    assert console_client(admin).post(f"/console/groups/{group.pk}/delete/").status_code == 302
    assert not Group.objects.filter(pk=group.pk).exists()
