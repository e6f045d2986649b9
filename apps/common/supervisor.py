"""A small process supervisor for `manage.py runstack`: start each process, restart one that exits.

A worker or beat that dies (a broker outage it could not ride out, an out-of-memory kill) is
started again after a pause that doubles with each quick failure (up to `max_backoff`), and every
exit and restart is logged; the others keep running. Only a stop request ends the stack.
"""

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    failures_in_a_row: int = 0
    restart_at: float | None = None


class Supervisor:
    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        log: Callable[[str], None],
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
        poll_interval: float = 0.2,
    ) -> None:
        self.children = {name: Child(name, command) for name, command in commands.items()}
        self.log = log
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        # A process that stayed up this long is healthy again: its next restart waits min_backoff.
        self.stable_after = stable_after
        self.poll_interval = poll_interval
        self.stopping = False

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    def _start(self, child: Child) -> None:
        # Own process groups: Ctrl-C reaches this supervisor, which stops the children in order.
        child.process = subprocess.Popen(child.command, start_new_session=True)  # noqa: S603 - our own commands
        child.started_at = time.monotonic()
        child.restart_at = None
        self.log(f"{child.name} started (pid {child.process.pid})")

    def backoff_for(self, child: Child) -> float:
        return min(self.max_backoff, self.min_backoff * 2 ** max(child.failures_in_a_row - 1, 0))

    def _on_exit(self, child: Child, now: float) -> None:
        assert child.process is not None
        code = child.process.returncode
        child.failures_in_a_row = 1 if now - child.started_at >= self.stable_after else child.failures_in_a_row + 1
        delay = self.backoff_for(child)
        child.restart_at = now + delay
        child.process = None
        self.log(f"{child.name} exited with {code}; restarting it in {delay:g} s (failure {child.failures_in_a_row})")

    def run(self) -> None:
        """Supervise until `request_stop` (SIGINT and SIGTERM call it), then stop every child."""
        for child in self.children.values():
            self._start(child)
        try:
            while not self.stopping:
                time.sleep(self.poll_interval)
                now = time.monotonic()
                for child in self.children.values():
                    if child.process is not None and child.process.poll() is not None:
                        self._on_exit(child, now)
                    elif child.process is None and child.restart_at is not None and now >= child.restart_at:
                        child.restarts += 1
                        self._start(child)
        finally:
            self.stop_all()

    def stop_all(self, timeout: float = 15.0) -> None:
        running = [child.process for child in self.children.values() if child.process and child.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
