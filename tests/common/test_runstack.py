"""`manage.py runstack` (what `make run` serves with) restarts a worker or beat that dies, and keeps the rest up.

The real command in a subprocess: runserver, a Celery worker and beat on the configured broker
(Redis in CI, the filesystem broker on SQLite), on a queue of this test's own. The test kills the
worker's whole process group and then beat, as a crash would, and waits for the supervisor to log
the exit and start them again; the new worker then runs a task that writes to the database.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

from apps.common.models import WorkerHeartbeat
from apps.common.tasks import record_worker_heartbeat
from tests.conftest import PROJECT_ROOT, _database_url_for_subprocess, stop_process, wait_for
from tests.provisioning.conftest import free_port

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class RunStack:
    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.log_path = PROJECT_ROOT / "var" / f"test-runstack-{queue}.log"
        self.schedule_dir = tempfile.mkdtemp(prefix="runstack-beat-")
        self.process: subprocess.Popen | None = None

    def start(self) -> "RunStack":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "idp_portal.settings",
            "DATABASE_URL": _database_url_for_subprocess(),
            "CELERY_DEFAULT_QUEUE": self.queue,
            "CELERY_BEAT_SCHEDULE_FILENAME": str(Path(self.schedule_dir) / "schedule"),
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runstack", "--addr", f"127.0.0.1:{free_port()}", "--concurrency=1",
                 "--max-backoff=2"],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self, name: str) -> list[int]:
        return [int(pid) for pid in re.findall(rf"runstack: {name} started \(pid (\d+)\)", self.log())]

    def kill_group(self, pid: int) -> None:
        os.killpg(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # as Ctrl-C: the supervisor stops its children
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process(self.process)
        for name in ("web", "worker", "beat"):
            for pid in self.pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_runstack_restarts_a_killed_worker_and_beat():
    queue = f"runstack-{uuid.uuid4().hex[:8]}"
    stack = RunStack(queue).start()
    try:
        wait_for(lambda: stack.log().count(" ready.") >= 1, timeout=90, interval=0.2, message="the worker to be ready")
        wait_for(lambda: "beat: Starting..." in stack.log(), timeout=60, interval=0.2, message="beat to start")
        [worker_pid], [beat_pid], [web_pid] = stack.pids("worker"), stack.pids("beat"), stack.pids("web")

        stack.kill_group(worker_pid)
        wait_for(lambda: len(stack.pids("worker")) == 2, timeout=30, interval=0.2, message="a new worker")
        assert re.search(r"runstack: worker exited with -9; restarting it in [\d.]+ s", stack.log())
        wait_for(lambda: stack.log().count(" ready.") >= 2, timeout=90, interval=0.2, message="the new worker")

        stack.kill_group(beat_pid)
        wait_for(lambda: len(stack.pids("beat")) == 2, timeout=30, interval=0.2, message="a new beat")
        assert "runstack: beat exited with -9" in stack.log()

        # The rest of the stack kept running through both crashes, and the new worker works.
        assert stack.process.poll() is None
        assert _alive(web_pid) and stack.pids("web") == [web_pid]
        WorkerHeartbeat.objects.all().delete()
        record_worker_heartbeat.apply_async(queue=queue)
        wait_for(
            lambda: WorkerHeartbeat.objects.filter(worker__startswith="worker@").exists(),
            timeout=60,
            message="the restarted worker to run a task",
        )
    finally:
        stack.stop()
    assert stack.process.returncode == 0, stack.log()[-3000:]


def test_compose_restarts_worker_and_beat_and_runs_beat_apart():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("web", "worker", "beat"):
        assert services[name]["restart"] in ("unless-stopped", "always", "on-failure"), name
    assert " beat" in " ".join(services["beat"]["command"])
    assert "-B" not in services["worker"]["command"] and "--beat" not in services["worker"]["command"]
