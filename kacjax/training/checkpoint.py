"""Orbax checkpoints of a train state with its config (and provenance) beside it.

A checkpoint directory holds numbered steps; each step has two items: ``state``
(the :class:`~kacjax.train_state.TrainState`) and ``meta`` (JSON: the config that
wrote it and, for distillation students, where their teacher came from). Saves
are asynchronous and atomic, so a kill at any point leaves the last finished
save intact; a full disk ends the run with :class:`DiskFullError` and a folder that cannot be written
(permissions, a read-only disk) with :class:`UnwritableError`, each naming the last intact step.
Restores go onto whatever devices the abstract state names, so a checkpoint written
on 8 devices restores on 1.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from kacjax.runtime import logs


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class CheckpointError(ValueError):
    """A checkpoint is missing or does not fit the current configuration."""


class DiskFullError(CheckpointError):
    """A save found the disk (or the quota) full; the steps finished before it are intact."""


class UnwritableError(CheckpointError):
    """A save could not write the checkpoint folder (permissions, a read-only disk); the steps finished
    before it are intact."""


def _drop_late_reports_to_closed_loops() -> None:
    """Keeps the reads left over by a failed restore quiet (installed once, for the process).

    When one array of a step fails to read, Orbax's event loop ends while TensorStore finishes the
    step's other reads; each then reports to the closed loop from its own thread, and Python would
    print one "Event loop is closed" traceback per array. Those are dropped; every other
    unraisable exception goes to the hook that was there before.
    """
    previous = sys.unraisablehook
    if getattr(previous, "kacjax_drops_closed_loop_reports", False):
        return

    def hook(unraisable) -> None:
        if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    hook.kacjax_drops_closed_loop_reports = True
    sys.unraisablehook = hook


def _mentions(codes, text: str) -> bool:
    return any(os.strerror(code) in text for code in codes)


def _caused_by(codes, err: Optional[BaseException]) -> bool:
    """Whether ``err``, or an exception it was raised from, is an OSError of ``codes`` (Orbax and
    TensorStore wrap them, some only in their messages)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if (isinstance(err, OSError) and err.errno in codes) or _mentions(codes, str(err)):
            return True
        err = err.__cause__ or err.__context__
    return False


def is_disk_full(err: Optional[BaseException]) -> bool:
    """Whether ``err``, or an exception it was raised from, is a full disk (or quota)."""
    return _caused_by(_DISK_FULL, err)


def is_unwritable(err: Optional[BaseException]) -> bool:
    """Whether ``err``, or an exception it was raised from, is a folder that cannot be written."""
    return _caused_by(_UNWRITABLE, err)


class _OrbaxWriteFailure(logging.Filter):
    """Drops Orbax's own reports of a full disk or an unwritable folder (a traceback per save thread):
    :class:`DiskFullError` or :class:`UnwritableError` says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        codes = (*_DISK_FULL, *_UNWRITABLE)
        return "orbax" not in record.pathname or not (_caused_by(codes, exc) or _mentions(codes, record.getMessage()))


_ORBAX_WRITE_FAILURE = _OrbaxWriteFailure()


def abstract_like(tree, sharding):
    """``ShapeDtypeStruct``s of ``tree`` (arrays or shape structs) carrying ``sharding``."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


class Checkpointer:
    """Keeps the last ``keep`` checkpoints of one training run in ``directory``."""

    def __init__(self, directory: str, *, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        logging.getLogger("absl").addFilter(_ORBAX_WRITE_FAILURE)  # Orbax logs through absl; added once

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def save(self, step: int, state, meta: dict) -> None:
        """Starts an asynchronous save of ``state`` and ``meta`` at ``step`` (no-op if it exists)."""
        if step in self._manager.all_steps():
            return
        with self._write_failure_ends_run():  # a save also finishes the previous one
            self._manager.save(
                step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
            )

    def read_meta(self, step: Optional[int] = None) -> dict:
        """The JSON saved with ``step``; by default the newest step whose JSON reads, falling back past
        damaged ones (bad JSON, an empty file, a missing ``meta/``, an empty step) with a warning."""
        if step is not None:
            return self._read_meta(self._existing_step(step))
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        for k, candidate in enumerate(steps):
            try:
                meta = self._read_meta(candidate)
            except CheckpointError as err:
                if k == len(steps) - 1:
                    raise CheckpointError(f"no step of {self.directory} has readable metadata (steps {steps}); "
                                          f"the oldest failed with: {err}") from None
                continue
            if k:
                logs.warn(f"checkpoint steps {steps[:k]} in {self.directory} have damaged metadata; reading step "
                          f"{candidate}, the newest intact one")
            return meta
        raise AssertionError("unreachable")

    def _read_meta(self, step: int) -> dict:
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as err:  # noqa: BLE001 - whatever is damaged: bad JSON, a missing file or folder
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise CheckpointError(f"checkpoint {self.directory} step {step} has damaged metadata: "
                                  f"{first_line}") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"checkpoint {self.directory} step {step} has damaged metadata: not a JSON object")
        return meta

    def restore(self, abstract_state, step: Optional[int] = None) -> Any:
        """Restores the state at ``step`` (default latest) onto ``abstract_state``'s shardings; a step
        whose metadata does not read is damaged too."""
        step = self._existing_step(step)
        try:
            return self._restore_step(abstract_state, step)
        except (ValueError, KeyError, TypeError) as err:
            raise self._not_restored(step, err) from None

    def _not_restored(self, step: int, err: Exception) -> CheckpointError:
        """The error of a step that did not restore: Orbax's ValueError, KeyError or TypeError is a
        tree or shape that does not fit the model."""
        if isinstance(err, CheckpointError):
            return err
        if isinstance(err, (ValueError, KeyError, TypeError)):
            return CheckpointError(f"checkpoint {self.directory} step {step} does not match the current "
                                   f"model/optimizer (was it written by another architecture or config?): {err}")
        return CheckpointError(f"checkpoint {self.directory} step {step} cannot be read: "
                               f"{(str(err).strip().splitlines() or [type(err).__name__])[0][:300]}")

    def _restore_step(self, abstract_state, step: int) -> Any:
        """:meth:`restore` of an existing ``step``, with the reader's own error when it fails."""
        self._read_meta(step)
        try:
            return self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
            ).state
        except Exception:
            _drop_late_reports_to_closed_loops()
            raise

    def restore_newest_intact(self, abstract_state, *, delete_damaged: bool = False):
        """``(step, state)`` of the newest step that restores, falling back past damaged ones, loudly.

        A step that fails while an older one restores is damaged (a file cut short, a bad
        disk): it is named in a warning with the reader's own error and, with ``delete_damaged``
        (training, which will write those steps again), deleted. When no step restores, the newest
        step's error is raised (a :class:`CheckpointError` when they do not fit the model).
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        errors = []
        for step in steps:
            try:
                state = self._restore_step(abstract_state, step)
            except Exception as err:  # noqa: BLE001 - any failure of a step: try the next older one
                errors.append((step, err))
                continue
            for bad, err in errors:
                first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
                logs.warn(f"checkpoint step {bad} in {self.directory} is damaged and was skipped ({first_line}); "
                          f"{'deleting it and ' if delete_damaged else ''}using step {step}, the newest intact one")
                if delete_damaged:
                    self._manager.delete(bad)
            return step, state
        raise self._not_restored(*errors[0]) from None

    def wait(self) -> None:
        """Blocks until pending saves are on disk."""
        with self._write_failure_ends_run():
            self._manager.wait_until_finished()

    @contextlib.contextmanager
    def _write_failure_ends_run(self):
        """Turns a full disk under a save into :class:`DiskFullError` and a folder that cannot be written
        into :class:`UnwritableError`, each naming the last intact step."""
        try:
            yield
        except Exception as err:
            full = is_disk_full(err)
            if not (full or is_unwritable(err)):
                raise
            intact = self.latest_step()
            kept = "no step is saved yet" if intact is None else f"step {intact} is the last intact one"
            if full:
                raise DiskFullError(f"disk full while saving a checkpoint in {self.directory}: {kept}; "
                                    "free space, then rerun to resume") from err
            reason = next((e.strerror for e in (err, err.__cause__, err.__context__)
                           if isinstance(e, OSError) and e.strerror), "not writable")
            raise UnwritableError(f"cannot write a checkpoint in {self.directory} ({reason}): {kept}; make it "
                                  "writable, then rerun to resume") from err

    def close(self) -> None:
        self._manager.close()

    def _existing_step(self, step: Optional[int]) -> int:
        step = self.latest_step() if step is None else step
        if step is None or step not in self._manager.all_steps():
            raise CheckpointError(f"no checkpoint{'' if step is None else f' at step {step}'} in {self.directory}")
        return step
