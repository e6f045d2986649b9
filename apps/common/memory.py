"""Handing the memory a finished task freed back to the operating system.

A task that works on a large object (the 100,000 members of a group, say) frees what it built when
it ends, but not all at once: some of it sits in reference cycles until the collector's next full
pass, and glibc keeps the freed heap in the process for later allocations. A worker's RSS then
stays near the largest task it ever ran (145 -> 189 MiB after one 100,000-member group, measured).
After a task (and after each batch of the provisioning engine, whose tasks run up to 45 s) that
grew the process by GROWTH_BYTES or more, a full collection and glibc's malloc_trim give that memory
back; otherwise the check costs one read of /proc. Where the C library is not
glibc, only the collection is done.
"""

import ctypes
import ctypes.util
import functools
import gc
import os

GROWTH_BYTES = 16 * 1024 * 1024
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_settled_rss: int | None = None


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


def return_freed_memory(*, force: bool = False) -> bool:
    """Collect and trim if the process grew by GROWTH_BYTES since the last time (or `force`);
    True if it did."""
    global _settled_rss
    rss = _rss_bytes()
    if not force and rss is not None and _settled_rss is not None and rss - _settled_rss < GROWTH_BYTES:
        return False
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    _settled_rss = _rss_bytes()
    return True
