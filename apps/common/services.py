from django.utils import timezone

from apps.common.models import WorkerHeartbeat


def worker_heartbeat_record(*, worker: str) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(worker=worker[:255], defaults={"seen_at": timezone.now()})
    return heartbeat
