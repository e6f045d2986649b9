"""A worker hands back what a large task freed (apps.common.memory), after each task (task_postrun)."""

import sys

import pytest

from apps.common import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and trims glibc's heap")
def test_a_process_that_grew_collects_and_trims_and_one_that_did_not_is_left_alone():
    import gc

    memory.return_freed_memory(force=True)
    assert memory.return_freed_memory() is False  # nothing grew since
    before = memory._rss_bytes()
    gc.disable()  # as between two of the collector's full passes in a worker
    try:
        for number in range(300_000):  # about 60 MiB of garbage that only a collection frees
            cycle = [str(number) * 3]
            cycle.append(cycle)
        del cycle
        assert memory._rss_bytes() - before >= memory.GROWTH_BYTES
        assert memory.return_freed_memory() is True
    finally:
        gc.enable()
    assert memory._rss_bytes() - before < memory.GROWTH_BYTES  # given back, not kept for later
    assert memory.return_freed_memory() is False


def test_every_celery_task_is_followed_by_it():
    from celery.signals import task_postrun

    import idp_portal.celery

    receivers = [receiver() for _key, receiver in task_postrun.receivers]
    assert idp_portal.celery._return_freed_memory in receivers
