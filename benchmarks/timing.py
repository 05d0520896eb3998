"""Wall-clock timing of jitted calls, and how much CPU other processes used meanwhile.

Shared by the benchmark scripts. On a shared 2-core machine another job can double a
step's time; :class:`OtherCpu` reads ``/proc/stat`` and this process's CPU time around a
measurement so that each printed figure says whether the machine was shared.
"""

import os
import time

import jax

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def seconds_per_call(fn, *args, repeats: int) -> float:
    """Mean seconds per ``fn(*args)`` after one warm-up call (which compiles)."""
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


def fastest_seconds(fn, *args, repeats: int) -> float:
    """The fastest of ``repeats`` timed ``fn(*args)`` calls after one warm-up call (which compiles)."""
    jax.block_until_ready(fn(*args))
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def _busy_seconds() -> float:
    """CPU seconds all processes spent busy since boot (``/proc/stat``: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICKS


class OtherCpu:
    """Context manager: ``cores`` is the average number of cores other processes kept busy inside it."""

    SHARED = 0.2  # cores of other work above which a timing is flagged as shared

    def __enter__(self):
        self._start = (time.perf_counter(), _busy_seconds(), sum(os.times()[:2]))
        return self

    def __exit__(self, *exc):
        wall, busy, ours = time.perf_counter(), _busy_seconds(), sum(os.times()[:2])
        elapsed = max(wall - self._start[0], 1e-9)
        self.cores = max(0.0, (busy - self._start[1]) - (ours - self._start[2])) / elapsed

    def note(self) -> str:
        """``'other processes: 0.03 cores'``, flagged ``SHARED`` above :attr:`SHARED`."""
        flag = "  SHARED: timings inflated" if self.cores > self.SHARED else ""
        return f"other processes: {self.cores:.2f} of {os.cpu_count()} cores{flag}"
