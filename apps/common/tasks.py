from celery import shared_task

from apps.common import rowcounts
from apps.common.services import worker_heartbeat_record


@shared_task(name="common.record_worker_heartbeat", bind=True, ignore_result=True)
def record_worker_heartbeat(self) -> None:
    worker_heartbeat_record(worker=self.request.hostname or "unknown")


@shared_task(name="common.compact_row_counts", ignore_result=True)
def compact_row_counts() -> None:
    rowcounts.compact_all()
