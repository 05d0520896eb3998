"""The training loop shared by the teacher and every distillation stage.

Runs a jitted step from the state's step to ``num_steps``, feeding the batch of
each step (the input pipeline is a pure function of the step), logging, saving
periodic checkpoints, and saving once more when SIGTERM or SIGINT arrives.
"""

from __future__ import annotations

import signal
import time
from typing import Callable, Iterator

import jax
import numpy as np

from kacjax.runtime import parallel
from kacjax.runtime.logs import MetricWriter
from kacjax.training.checkpoint import Checkpointer


class TrainingInterrupted(Exception):
    """Raised after a signal stopped training; the state was checkpointed first."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by signal {signum} at step {step}; checkpoint saved, rerun to resume")
        self.signum = signum


class NonFiniteError(FloatingPointError):
    """Too many consecutive steps had a non-finite loss or gradient."""


class _SignalFlag:
    """Records SIGTERM/SIGINT instead of dying, while the loop runs (main thread only)."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._record)
        except ValueError:  # not the main thread: signals cannot be caught here
            self._previous.clear()
        return self

    def _record(self, signum, frame):
        del frame
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def fit(
    state,
    step_fn: Callable,
    batches_from: Callable[[int], Iterator[dict]],
    *,
    mesh,
    num_steps: int,
    batch_size: int,
    checkpointer: Checkpointer,
    meta: dict,
    writer: MetricWriter,
    log_every: int,
    checkpoint_every: int,
    max_nonfinite_streak: int,
):
    """Trains from ``state.step`` to ``num_steps`` and returns the final state.

    Args:
      state: replicated train state (donated to ``step_fn`` each step).
      step_fn: jitted ``(state, batch) -> (state, metrics)``.
      batches_from: ``start_step -> iterator`` of this process's rows for each step from
        ``start_step`` on (pytrees of numpy arrays), e.g. ``Input.iterate`` (prefetching).
      batch_size: global batch size, for the images/s figure.
      meta: JSON saved beside every checkpoint.
    """
    step = int(state.step)
    writer.discard_after(step)  # records past the checkpoint are logged again as those steps rerun
    pending, t_last, step_last = [], time.perf_counter(), step
    batches = batches_from(step)
    try:
        with _SignalFlag() as flag:
            while step < num_steps:
                state, metrics = step_fn(state, parallel.shard_batch(next(batches), mesh))
                step += 1
                pending.append(metrics)
                if step % log_every == 0 or step == num_steps:
                    host = parallel.to_host(pending)
                    pending = []
                    elapsed = time.perf_counter() - t_last
                    scalars = {k: np.mean([m[k] for m in host]) for k in host[0]}
                    scalars["images_per_s"] = (step - step_last) * batch_size / elapsed
                    scalars["nonfinite_total"] = int(state.nonfinite_total)
                    writer.write(step, scalars, console=f"({step}/{num_steps})")
                    t_last, step_last = time.perf_counter(), step
                    streak = int(state.nonfinite_streak)
                    if streak > max_nonfinite_streak:
                        checkpointer.wait()
                        raise NonFiniteError(
                            f"{streak} consecutive steps up to step {step} had a non-finite loss or gradient "
                            f"(parameters were left untouched). Lower the learning rate or check the data; "
                            f"the last good checkpoint is in {checkpointer.directory}"
                        )
                if step % checkpoint_every == 0 or step == num_steps or flag.signum is not None:
                    checkpointer.save(step, state, meta)
                if flag.signum is not None:
                    checkpointer.wait()
                    raise TrainingInterrupted(flag.signum, step)
    finally:
        getattr(batches, "close", lambda: None)()  # stops a prefetch thread
    checkpointer.wait()
    jax.block_until_ready(state)
    return state


def fit_run(run, train_cfg, *, num_steps: int, checkpointer: Checkpointer, meta: dict, prefix: str):
    """:func:`fit` for a :class:`kacjax.training.setup.Run`, with ``train_cfg``'s batch and intervals.

    Metrics go to ``metrics.jsonl`` in the checkpointer's directory, labelled ``prefix``.
    """
    return fit(
        run.state, run.train_step, run.data.iterate, mesh=run.mesh, num_steps=num_steps,
        batch_size=train_cfg.batch_size, checkpointer=checkpointer, meta=meta,
        writer=MetricWriter(checkpointer.directory, prefix=prefix), log_every=train_cfg.log_every,
        checkpoint_every=train_cfg.checkpoint_every, max_nonfinite_streak=train_cfg.max_nonfinite_streak,
    )
