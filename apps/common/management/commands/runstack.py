"""Run the web server, a Celery worker and Celery beat together; Ctrl-C stops all three."""

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start the development web server, a Celery worker and beat; stop them all on Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, addr: str, concurrency: int, **options) -> None:
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
        processes: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, command in commands.items():
            # Own process groups: Ctrl-C reaches this supervisor, which stops the children in order.
            processes[name] = subprocess.Popen(command, start_new_session=True)
        self.stdout.write(f"idp-portal on http://{addr}/ (web, worker, beat). Ctrl-C stops all.")
        exited = None
        while not stopping and exited is None:
            time.sleep(0.3)
            exited = next((name for name, proc in processes.items() if proc.poll() is not None), None)
        if exited:
            self.stderr.write(f"{exited} exited with {processes[exited].returncode}; stopping the others.")
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if exited and not stopping:
            raise SystemExit(1)
