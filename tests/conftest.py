"""Test setup: 8 fake CPU devices, so data-parallel code paths run everywhere."""

import atexit
import os
import shutil
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_CREATED = []  # the session's own temporary directories, removed when it ends


def _session_dir(variable: str, prefix: str) -> None:
    """Points ``variable`` at a new temporary directory of this session's, unless the environment names one."""
    if variable not in os.environ:
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
        _CREATED.append(os.environ[variable])


def _remove_created(pid: int = os.getpid()) -> None:
    if os.getpid() == pid:  # the session's own process, not a forked child exiting early
        for path in _CREATED:
            shutil.rmtree(path, ignore_errors=True)


# Removed at exit of this process only: the subprocesses the tests start share them, and end first.
atexit.register(_remove_created)
# converted FID weights and reference statistics: per test session, never a user's cache
_session_dir("KACJAX_CACHE_DIR", "kacjax-test-cache-")
# XLA's persistent compilation cache, per test session (subprocesses share it): tests that compile the same
# step (the same tiny configs, the same teacher in several variants) compile it once
_session_dir("JAX_COMPILATION_CACHE_DIR", "kacjax-test-xla-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py

from kacjax.runtime.parallel import size_cpu_thread_pools  # noqa: E402  (sets no JAX state)

size_cpu_thread_pools()  # 8 fake devices on a 2-core machine: see its docstring


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    """A workdir holding the teacher of ``helpers.chain_config()`` (4 steps), shared by the distillation tests."""
    from helpers import chain_config
    from kacjax.training.teacher import train

    workdir = str(tmp_path_factory.mktemp("teacher"))
    train(chain_config(), workdir)
    return workdir
