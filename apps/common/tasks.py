from celery import shared_task

from apps.common.services import worker_heartbeat_record


@shared_task(name="common.record_worker_heartbeat", bind=True, ignore_result=True)
def record_worker_heartbeat(self) -> None:
    worker_heartbeat_record(worker=self.request.hostname or "unknown")
