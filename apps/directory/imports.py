"""Bulk add of members from a CSV file: parsed at upload, run in batches by a Celery task that resumes
where a killed worker stopped. Each batch goes through apps.directory.services like any other change."""

import time
from typing import Any

from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.csv_files import read_csv_lines
from apps.common.errors import field_error
from apps.common.queue import enqueue_on_commit
from apps.directory.models import Group, GroupImportJob, ImportStatus, User
from apps.directory.roles import actor_reaches
from apps.directory.rules.services import require_manual_membership
from apps.directory.services import group_add_members

GROUP_IMPORT_MAX_ROWS = 100_000
# The Celery task that runs an import (apps/directory/tasks.py), sent by name.
GROUP_IMPORT_TASK = "directory.group_import_run"
GROUP_IMPORT_BATCH_SIZE = 500
# Unknown rows listed on the page (a wrong file could make every row unknown); all are counted.
GROUP_IMPORT_UNKNOWN_KEPT = 1000
_IDENTITY_COLUMNS = ("username", "email")


def parse_member_csv(content: bytes) -> list[tuple[int, str]]:
    """(line number, username or email) for each row of an uploaded file.

    Either one value a line, or a CSV with a `username` and/or `email` column (the first line is
    then the header). Blank lines are skipped; a ValidationError on `file` names what is wrong.
    """
    lines = read_csv_lines(content)
    header = [cell.strip().lower() for cell in lines[0]] if lines else []
    columns = [header.index(name) for name in _IDENTITY_COLUMNS if name in header]
    start = 1 if columns else 0
    if not columns:
        columns = [0]
    rows: list[tuple[int, str]] = []
    for number, cells in enumerate(lines[start:], start=start + 1):
        value = next((cells[index].strip() for index in columns if index < len(cells) and cells[index].strip()), "")
        if value:
            rows.append((number, value[:254]))
    if not rows:
        raise field_error("file", "The file names no users: put one username or email on each line.")
    if len(rows) > GROUP_IMPORT_MAX_ROWS:
        raise field_error("file", f"The file has {len(rows):,} rows; at most {GROUP_IMPORT_MAX_ROWS:,} at a time.")
    return rows


@transaction.atomic
def group_import_start(*, actor: Actor, group: Group, filename: str, content: bytes) -> GroupImportJob:
    """Record an import job for the rows of the file and run it in the background after commit."""
    require_manual_membership(group)
    rows = parse_member_csv(content)
    job = GroupImportJob.objects.create(
        group=group,
        created_by=actor if isinstance(actor, User) else None,
        filename=(filename or "")[:255],
        rows=[[number, value] for number, value in rows],
        total_rows=len(rows),
    )
    audit_record(
        actor=actor, action="group.import.start", target=group, after={"file": job.filename, "rows": len(rows)}
    )

    enqueue_on_commit(GROUP_IMPORT_TASK, str(job.pk))
    return job


def _users_by_identity(values: list[str]) -> dict[str, User]:
    """Users named by username or email (any case), keyed by the lower-cased value."""
    usernames = {value.lower() for value in values if "@" not in value}
    emails = {value.lower() for value in values if "@" in value}
    found: dict[str, User] = {}
    if usernames:
        for user in User.objects.alias(username_lower=Lower("username")).filter(username_lower__in=usernames):
            found[user.username.lower()] = user
    if emails:
        matches = User.objects.exclude(email="").alias(email_lower=Lower("email")).filter(email_lower__in=emails)
        for user in matches:
            found[user.email.lower()] = user
    # A username may itself contain "@": look those up as usernames too.
    missing = {value for value in emails if value not in found}
    if missing:
        for user in User.objects.alias(username_lower=Lower("username")).filter(username_lower__in=missing):
            found[user.username.lower()] = user
    return found


def group_import_process(job_id: Any, *, budget_seconds: float = 40.0) -> bool:
    """Add the next batches of a job's rows to its group; returns True when rows are left over.

    Each batch commits with the job's progress, so a killed worker resumes where it stopped, and
    a batch that runs twice adds nobody twice (`group_add_members` skips members).
    """
    deadline = time.monotonic() + budget_seconds
    job = GroupImportJob.objects.select_related("group", "created_by").filter(pk=job_id).first()
    if job is None or job.finished:
        return False
    if job.status == ImportStatus.PENDING:
        job.status = ImportStatus.RUNNING
        job.save(update_fields=["status"])
    while job.processed_rows < job.total_rows:
        batch = job.rows[job.processed_rows : job.processed_rows + GROUP_IMPORT_BATCH_SIZE]
        found = _users_by_identity([value for _, value in batch])
        users: dict[Any, User] = {}
        unknown, refused = [], []
        for number, value in batch:
            user = found.get(value.lower())
            if user is None:
                unknown.append([number, value])
            elif user.console_role and (job.created_by is None or not actor_reaches(job.created_by, user)):
                refused.append([number, value])
            else:
                users[user.pk] = user
        with transaction.atomic():
            added = group_add_members(actor=job.created_by, group=job.group, users=users.values()) if users else []
            job.processed_rows += len(batch)
            job.added_count += len(added)
            job.already_member_count += len(users) - len(added)
            job.unknown_count += len(unknown)
            job.unknown_rows = _kept_rows(job.unknown_rows, unknown)
            job.refused_count += len(refused)
            job.refused_rows = _kept_rows(job.refused_rows, refused)
            job.save(
                update_fields=[
                    "processed_rows",
                    "added_count",
                    "already_member_count",
                    "unknown_rows",
                    "unknown_count",
                    "refused_rows",
                    "refused_count",
                ]
            )
        if job.processed_rows < job.total_rows and time.monotonic() > deadline:
            return True
    with transaction.atomic():
        job.status = ImportStatus.DONE
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
        audit_record(
            actor=job.created_by,
            action="group.import.finish",
            target=job.group,
            after={
                "file": job.filename,
                "rows": job.total_rows,
                "added": job.added_count,
                "already_members": job.already_member_count,
                "unknown": job.unknown_count,
                "refused_administrators": job.refused_count,
            },
        )
    return False


def _kept_rows(kept: list, new: list) -> list:
    """The first GROUP_IMPORT_UNKNOWN_KEPT rows of a kind, for the page (all are counted)."""
    room = GROUP_IMPORT_UNKNOWN_KEPT - len(kept)
    return kept + new[:room] if new and room > 0 else kept


def group_import_fail(job_id: Any, reason: str) -> None:
    """Mark a job that cannot go on as failed, so the page stops polling and says why."""
    GroupImportJob.objects.filter(pk=job_id).exclude(status=ImportStatus.DONE).update(
        status=ImportStatus.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
