"""Run the web server, a Celery worker and Celery beat together; Ctrl-C stops all three.

Each runs as a process of its own under apps.common.supervisor: one that exits is restarted with
backoff (and the others keep running), so a worker that dies in a broker outage comes back, and
beat, apart from the worker, keeps scheduling the outbox sweep meanwhile.
"""

import signal
import sys

from django.core.management.base import BaseCommand

from apps.common.supervisor import Supervisor


class Command(BaseCommand):
    help = "Start the development web server, a Celery worker and beat; restart any that exits; stop all on Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument(
            "--max-backoff", type=float, default=30.0, help="Longest pause, in seconds, before restarting a process."
        )

    def handle(self, *args, addr: str, concurrency: int, max_backoff: float, **options) -> None:
        python = sys.executable
        commands = {
            "web": [python, "manage.py", "runserver", addr, "--noreload"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "idp_portal",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={concurrency}",
                "--hostname=worker@%h",
            ],
            "beat": [python, "-m", "celery", "-A", "idp_portal", "beat", "--loglevel=INFO"],
        }

        def log(line: str) -> None:
            self.stderr.write(f"runstack: {line}")
            self.stderr.flush()

        supervisor = Supervisor(commands, log=log, min_backoff=min(1.0, max_backoff), max_backoff=max_backoff)
        signal.signal(signal.SIGINT, supervisor.request_stop)
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        self.stdout.write(f"idp-portal on http://{addr}/ (web, worker, beat). Ctrl-C stops all.")
        supervisor.run()
