"""The connector rate limit (GCRA): slots of all callers together are spaced by one emission interval.

On the configured Redis (CI) the schedule is shared; without it (SQLite runs) each process keeps
its own. Callers here are threads reserving at once; tests/provisioning/test_worker_resilience.py
and tests/test_many_processes.py measure real worker processes at a real app.
"""

import itertools
import threading
import time
import uuid

import pytest

from apps.provisioning import ratelimit


@pytest.mark.parametrize("per_second", [5, 50])
def test_reservations_from_many_callers_are_spaced_by_the_interval(per_second, settings):
    key = f"test-{uuid.uuid4().hex}"
    interval = ratelimit.emission_interval(per_second)
    waits: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(4):
            wait = ratelimit.reserve_slot(key, per_second)
            with lock:
                waits.append(time.monotonic() + wait)  # when this caller's slot comes

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The twelve slots lie one interval apart (within the milliseconds between Redis's clock reading
    # and this process's).
    slots = sorted(waits)
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert len(slots) == 12
    assert min(gaps) > interval - 0.02, gaps
    assert slots[-1] - slots[0] > 11 * interval - 0.05


def test_rate_leaves_room_for_a_late_request(settings):
    settings.PROVISIONING_RATE_WINDOW_MARGIN_MS = 50
    # Five requests per second span 1.05 s: one leaving up to 50 ms late stays out of the window.
    assert ratelimit.emission_interval(5) == pytest.approx(0.21)


def test_without_a_limit_nothing_waits():
    assert ratelimit.wait_for_slot("anything", 0) == 0.0
