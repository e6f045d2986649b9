"""The console's users CSV: the export of the filtered list and the import page with its report."""

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.directory import services
from apps.directory.models import User
from tests.factories import UserFactory


def test_list_links_to_export_and_import(db, admin_client):
    page = admin_client.get("/console/users/?status=active").content.decode()
    assert "/console/users/export.csv?status=active" in page
    assert "/console/users/import/" in page


def test_export_streams_the_filtered_users_with_their_profile(db, admin_client):
    services.user_create(actor=None, username="worker.bee", title="Welder", department="Ops")
    UserFactory(username="gone.person")
    gone = User.objects.get(username="gone.person")
    services.user_suspend(actor=None, user=gone)
    response = admin_client.get("/console/users/export.csv", {"status": "active", "q": "worker"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert "department" in lines[0].split(",")
    assert len(lines) == 2 and lines[1].startswith("worker.bee,")


def test_import_page_writes_rows_and_lists_refused_ones(db, admin_client):
    upload = SimpleUploadedFile(
        "people.csv", b"username,title,timezone\nnew.hire,Engineer,Europe/Paris\nbad.zone,,Mars/Base\n", "text/csv"
    )
    response = admin_client.post("/console/users/import/", {"file": upload})
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 created" in page and "1 refused" in page
    assert "bad.zone" in page and "timezone" in page
    assert User.objects.get(username="new.hire").title == "Engineer"
    assert not User.objects.filter(username="bad.zone").exists()


def test_an_unreadable_file_is_a_form_error(db, admin_client):
    upload = SimpleUploadedFile("people.csv", b"title\nx\n", "text/csv")
    response = admin_client.post("/console/users/import/", {"file": upload})
    assert response.status_code == 400
    assert "username column" in response.content.decode()


def test_read_only_may_export_but_not_import(db, readonly_client):
    assert readonly_client.get("/console/users/export.csv").status_code == 200
    assert readonly_client.get("/console/users/import/").status_code == 403
