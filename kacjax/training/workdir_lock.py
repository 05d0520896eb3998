"""One run per workdir: ``workdir/run.lock``, held by process 0 while a run writes there.

The lock is the operating system's advisory ``flock`` on that file and on the workdir itself (so
deleting ``run.lock`` during a run does not let a second one in), so it ends with the process
that holds it, however it ends (kill -9 included): a lock left by a dead run never blocks the
rerun. The file records the holder (host, process id, since when) for the
message that refuses a second run; it stays after the run. Readers (``kacjax.load``, the
notebooks' plots) never lock. On a network filesystem the lock is the server's: NFS
releases the lock of a lost host when its lease expires (about 90 s on NFSv4); a
filesystem without locks gets a warning and the run goes on unlocked.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket

import jax
import numpy as np

from kacjax.runtime import logs, parallel
from kacjax.training.rundir import LOCK_FILE


class WorkdirError(ValueError):
    """A workdir that cannot take this run: a file, not writable, or held by a live run."""


@contextlib.contextmanager
def hold(workdir: str):
    """Holds ``workdir`` (from process 0; every process waits for the verdict) until the block ends.

    Raises WorkdirError before the block when the workdir is a file, cannot be written or is
    held by another live run, naming the holder.
    """
    fds, error = (), None
    if jax.process_index() == 0:
        try:
            fds = _acquire(workdir)
        except WorkdirError as err:
            error = err
    if jax.process_count() > 1 and parallel.process_sum({"refused": np.int32(error is not None)})["refused"]:
        error = error or WorkdirError(f"process 0 could not hold the workdir {workdir}; its output says why")
    if error is not None:
        raise error
    try:
        yield
    finally:
        for fd in fds:
            os.close(fd)  # releases the lock


def _acquire(workdir: str) -> tuple:
    """Locks ``workdir`` and its lock file; returns their open descriptors (closing them releases both)."""
    if not workdir:
        raise WorkdirError("the workdir is empty ('' names no directory); give --workdir a directory")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} is a file, not a directory; choose another --workdir")
    path = os.path.join(workdir, LOCK_FILE)
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise WorkdirError(f"workdir {workdir} cannot be written ({err.strerror}: {err.filename}); "
                           "choose another --workdir or make it writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise WorkdirError(f"workdir {workdir} is in use by another run ({holder}); wait for it to end or stop it, "
                           "or choose another --workdir (kacjax.load can read it meanwhile)") from None
    except OSError as err:
        logs.warn(f"the filesystem of {workdir} has no file locks ({err.strerror}): a second run on this workdir "
                  "would not be refused")
        return (fd,)
    directory = os.open(workdir, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        for held in (fd, directory):
            os.close(held)
        raise WorkdirError(f"workdir {workdir} is in use by another run, whose {LOCK_FILE} was deleted; wait for it "
                           "to end or stop it, or choose another --workdir") from None
    except OSError:  # a filesystem that locks files but not directories: the file's lock alone
        os.close(directory)
        directory = None
    since = datetime.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": since}) + "\n").encode())
    return (fd,) if directory is None else (fd, directory)


def _holder(fd: int) -> str:
    """The holder the lock file names, in words."""
    try:
        found = json.loads(os.pread(fd, 4096, 0).decode())
        return f"host {found['host']}, process {found['pid']}, since {found['since']}"
    except (ValueError, KeyError, TypeError):
        return "which has not written its name yet"
