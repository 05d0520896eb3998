"""Notebook API: ``kacjax.load(workdir, stage=...)`` returns a :class:`Generator`.

Stages: 0 is the teacher, ``k >= 1`` the student of the k-th distillation stage,
``-1`` the last stage that has a checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import numpy as np
import tqdm

from kacjax.evaluation.sampling import Generated, generate
from kacjax.training.rundir import RunDir
from kacjax.training.trained import Trained


@dataclasses.dataclass(frozen=True)
class Generator(Trained):
    """A trained teacher or student, ready to sample (see :class:`~kacjax.training.trained.Trained`).

    ``default_method`` and ``default_steps`` are what it was trained to be sampled with:
    the config's sampler for the teacher, Euler on its own grid for a student. It samples
    in float32 whatever precision it was trained in, unless loaded with another ``dtype``.
    """

    @classmethod
    def load(cls, directory: str, *, mesh=None, dtype="float32"):
        """Restores ``directory``'s newest intact checkpoint for sampling, computing in ``dtype``."""
        return super().load(directory, mesh=mesh, dtype=dtype)

    @property
    def default_method(self) -> str:
        return self.sampling.method

    @property
    def default_steps(self) -> int:
        return self.sampling.steps

    def solve(self, key, num: int, labels=None, *, steps=None, sampler=None, w=None,
              return_trajectory=False, track_speed=False, mesh=None, timed=False) -> Generated:
        """One batch as a :class:`~kacjax.evaluation.sampling.Generated` (unclipped, with its network passes).

        Same arguments as :meth:`sample`; the prior draws depend only on ``key`` and ``num``,
        so two models solved with the same key start from the same points. ``track_speed``,
        ``mesh`` and ``timed``: see :func:`~kacjax.evaluation.sampling.generate`.
        """
        labels = self.labels_for(num, labels)
        if self.is_student and w not in (None, 0.0):
            raise ValueError("a distilled student has its guidance weight baked in; do not pass w")
        w = 0.0 if self.is_student else float(self.sampling.w if w is None else w)
        return generate(
            key, self.params, labels, w, model=self.model, flow=self.flow, num=num, shape=self.shape,
            method=sampler or self.default_method, steps=steps or self.default_steps,
            null_label=self.null_label, return_trajectory=return_trajectory, track_speed=track_speed, mesh=mesh,
            timed=timed,
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


def load(workdir: str, stage: int = 0, *, dtype: str = "float32") -> Generator:
    """Loads the EMA parameters of a stage (0: teacher, k: k-th student, -1: last), sampling in ``dtype``."""
    return Generator.load(RunDir(workdir).resolve(stage), dtype=dtype)
