"""Test setup: 8 fake CPU devices, so data-parallel code paths run everywhere, and a
persistent compilation cache, so the many tests that build the same tiny models
compile each program once."""

import os
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py

import jax  # noqa: E402

jax.config.update(
    "jax_compilation_cache_dir",
    os.environ.get("KACJAX_TEST_CACHE", os.path.join(tempfile.gettempdir(), "kacjax-test-xla-cache")),
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
