"""Wall-clock timing of jitted calls, shared by the benchmark scripts."""

import time

import jax


def seconds_per_call(fn, *args, repeats: int) -> float:
    """Mean seconds per ``fn(*args)`` after one warm-up call (which compiles)."""
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats
