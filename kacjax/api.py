"""Notebook API: ``kacjax.load(workdir, stage=...)`` returns a :class:`Generator`.

Stages: 0 is the teacher, ``k >= 1`` the student of the k-th distillation stage,
``-1`` the last stage that has a checkpoint.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np
import tqdm
from ml_collections import ConfigDict

from kacjax import experiment, parallel, sampling, train_state
from kacjax.checkpoint import CheckpointError, Checkpointer
from kacjax.models import build_model


def stage_directories(workdir: str) -> list:
    """Checkpoint directories by stage: index 0 the teacher, then each distillation stage."""
    from kacjax.distill import stage_dirs_in

    return [os.path.join(workdir, "teacher")] + stage_dirs_in(workdir)


def has_checkpoint(directory: str) -> bool:
    return os.path.isdir(directory) and Checkpointer(directory).latest_step() is not None


def _resolve_stage(workdir: str, stage: int) -> str:
    dirs = stage_directories(workdir)
    existing = [d for d in dirs if has_checkpoint(d)]
    if not existing:
        raise CheckpointError(f"no checkpoint in {workdir}: train a teacher there first (kacjax --mode=train)")
    if stage == -1:
        return existing[-1]
    if not 0 <= stage < len(dirs) or dirs[stage] not in existing:
        available = [dirs.index(d) for d in existing]
        raise CheckpointError(f"stage {stage} has no checkpoint in {workdir}; available: {available}")
    return dirs[stage]


class Generator:
    """A trained teacher or student, ready to sample.

    Attributes:
      config: the config that trained it; meta: the JSON saved with the checkpoint.
      shape: per-example shape; num_classes: int or None.
      default_method, default_steps: what the model was trained to be sampled with
        (the config's sampler for the teacher; Euler on its own grid for a student).
    """

    def __init__(self, directory: str):
        checkpointer = Checkpointer(directory)
        self.directory = directory
        self.meta = checkpointer.read_meta()
        self.config = ConfigDict(self.meta["config"])
        self.shape = tuple(self.meta["data"]["shape"])
        self.num_classes = self.meta["data"]["num_classes"]
        self.model = build_model(self.config.model)
        self.flow = experiment.build_flow(self.config)
        self.null_label = experiment.null_label(self.config.model)
        tx = train_state.make_optimizer(self.config.train)
        abstract = experiment.abstract_state(
            self.model, tx, self.shape, self.null_label is not None, parallel.make_mesh()
        )
        self.params = checkpointer.restore(abstract).ema_params
        self.step = checkpointer.latest_step()
        student = self.meta.get("student")
        self.is_student = student is not None
        self.default_method = "euler" if self.is_student else self.config.sample.method
        self.default_steps = student["steps"] if self.is_student else self.config.sample.steps

    def solve(self, key, num: int, labels=None, *, steps=None, sampler=None, w=None, return_trajectory=False):
        """One batch as a :class:`kacjax.samplers.Solution` (unclipped, optionally with its trajectory).

        Same arguments as :meth:`sample`; the prior draws depend only on ``key`` and ``num``,
        so two models solved with the same key start from the same points.
        """
        labels = self.labels_for(num, labels)
        if self.is_student and w not in (None, 0.0):
            raise ValueError("a distilled student has its guidance weight baked in; do not pass w")
        w = 0.0 if self.is_student else float(self.config.sample.w if w is None else w)
        return sampling.generate(
            key, self.params, labels, w, model=self.model, flow=self.flow, num=num, shape=self.shape,
            method=sampler or self.default_method, steps=steps or self.default_steps,
            null_label=self.null_label, return_trajectory=return_trajectory,
        )

    def sample(
        self,
        key,
        num: int,
        labels=None,
        *,
        steps: Optional[int] = None,
        sampler: Optional[str] = None,
        w: Optional[float] = None,
        batch_size: int = 256,
        progress: bool = False,
    ) -> np.ndarray:
        """Draws ``num`` samples, ``(num, *shape)`` numpy; images are clipped to ``[-1, 1]``.

        labels: ``(num,)`` ints, one int for all, or None (cycle through the classes).
        steps, sampler: default to what the model was trained for (see ``default_*``).
        w: guidance weight (teacher only; students have theirs baked in).
        """
        labels = self.labels_for(num, labels)
        keys = jax.random.split(key, -(-num // batch_size))
        out = []
        for i in tqdm.trange(len(keys), disable=not progress, desc="sampling"):
            lo, hi = i * batch_size, min(num, (i + 1) * batch_size)
            batch_labels = None if labels is None else labels[lo:hi]
            out.append(np.asarray(self.solve(keys[i], hi - lo, batch_labels, steps=steps, sampler=sampler, w=w).x))
        x = np.concatenate(out)
        return np.clip(x, -1.0, 1.0) if len(self.shape) == 3 else x

    def labels_for(self, num: int, labels):
        """``(num,)`` int32 labels from None (cycle the classes), an int or an array; None if unconditional."""
        if self.null_label is None:
            if labels is not None:
                raise ValueError("this model is unconditional: labels must be None")
            return None
        if labels is None:
            return np.arange(num, dtype=np.int32) % self.num_classes
        labels = np.broadcast_to(np.asarray(labels, np.int32), (num,))
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.min()}..{labels.max()}")
        return labels


def load(workdir: str, stage: int = 0) -> Generator:
    """Loads the EMA parameters of a stage (0: teacher, k: k-th student, -1: last)."""
    return Generator(_resolve_stage(workdir, stage))
