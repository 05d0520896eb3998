"""Orbax checkpoints of a train state with its config (and provenance) beside it.

A checkpoint directory holds numbered steps; each step has two items: ``state``
(the :class:`~kacjax.train_state.TrainState`) and ``meta`` (JSON: the config that
wrote it and, for distillation students, where their teacher came from). Saves
are asynchronous and atomic, so a kill at any point leaves the last finished
save intact. Restores go onto whatever devices the abstract state names, so a
checkpoint written on 8 devices restores on 1.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from kacjax.training import logs


class CheckpointError(ValueError):
    """A checkpoint is missing or does not fit the current configuration."""


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

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def save(self, step: int, state, meta: dict) -> None:
        """Starts an asynchronous save of ``state`` and ``meta`` at ``step`` (no-op if it exists)."""
        if step in self._manager.all_steps():
            return
        self._manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        )

    def read_meta(self, step: Optional[int] = None) -> dict:
        """The JSON saved with ``step`` (default: the latest)."""
        step = self._existing_step(step)
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def restore(self, abstract_state, step: Optional[int] = None) -> Any:
        """Restores the state at ``step`` (default latest) onto ``abstract_state``'s shardings."""
        step = self._existing_step(step)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
            )
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"checkpoint {self.directory} step {step} does not match the current model/optimizer "
                f"(was it written by another architecture or config?): {err}"
            ) from None
        return restored.state

    def restore_newest_intact(self, abstract_state, *, delete_damaged: bool = False):
        """``(step, state)`` of the newest step that restores, falling back past damaged ones, loudly.

        A step that fails while an older one restores is damaged (a file cut short, a bad
        disk): it is named in a warning and, with ``delete_damaged`` (training, which will
        write those steps again), deleted. When no step restores, the newest step's error
        is raised (a :class:`CheckpointError` when they do not fit the model).
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        errors = []
        for step in steps:
            try:
                state = self.restore(abstract_state, step)
            except Exception as err:  # noqa: BLE001 - any failure of a step: try the next older one
                errors.append((step, err))
                continue
            for bad, err in errors:
                first_line = str(err).strip().splitlines()[0][:300]
                logs.warn(f"checkpoint step {bad} in {self.directory} is damaged and was skipped ({first_line}); "
                          f"{'deleting it and ' if delete_damaged else ''}using step {step}, the newest intact one")
                if delete_damaged:
                    self._manager.delete(bad)
            return step, state
        newest_error = errors[0][1]
        if isinstance(newest_error, CheckpointError):
            raise newest_error
        raise CheckpointError(f"no step of {self.directory} can be read (steps {steps}); the newest failed with: "
                              f"{str(newest_error).strip().splitlines()[0][:300]}") from None

    def wait(self) -> None:
        """Blocks until pending saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def _existing_step(self, step: Optional[int]) -> int:
        step = self.latest_step() if step is None else step
        if step is None or step not in self._manager.all_steps():
            raise CheckpointError(f"no checkpoint{'' if step is None else f' at step {step}'} in {self.directory}")
        return step
