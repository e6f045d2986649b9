"""The process supervisor behind `manage.py runstack`: real child processes, restarted with backoff."""

import re
import sys
import threading

from apps.common.supervisor import Supervisor
from tests.conftest import wait_for


def test_a_process_that_keeps_failing_is_restarted_with_doubling_backoff_and_the_others_keep_running():
    lines: list[str] = []
    supervisor = Supervisor(
        {
            "crasher": [sys.executable, "-c", "import sys; sys.exit(3)"],
            "steady": [sys.executable, "-c", "import time; time.sleep(60)"],
        },
        log=lines.append,
        min_backoff=0.1,
        max_backoff=0.4,
        poll_interval=0.02,
    )
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    try:
        wait_for(lambda: sum("crasher exited" in line for line in lines) >= 4, timeout=30, message="four crashes")
    finally:
        supervisor.request_stop()
        runner.join(timeout=30)

    delays = [
        float(m.group(1))
        for line in lines
        if (m := re.search(r"crasher exited with 3; restarting it in ([\d.]+) s", line))
    ]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.4]
    assert sum("crasher started" in line for line in lines) >= 4
    # The steady process was started once and stopped only with the supervisor.
    assert [line for line in lines if line.startswith("steady")] == [
        next(line for line in lines if line.startswith("steady started"))
    ]
    assert supervisor.children["steady"].process.poll() is not None
    assert not runner.is_alive()
