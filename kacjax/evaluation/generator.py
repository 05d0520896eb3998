"""Notebook API: ``kacjax.load(workdir, stage=...)`` returns a :class:`Generator`.

Stages: 0 is the teacher, ``k >= 1`` the student of the k-th distillation stage,
``-1`` the last stage that has a checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import jax
import numpy as np
import tqdm

from kacjax.core.guidance import Guidance
from kacjax.evaluation.sampling import Generated, generate
from kacjax.models import check_dtype
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
        """Restores ``directory``'s newest intact checkpoint for sampling, computing in ``dtype`` (a float type)."""
        check_dtype(dtype)
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
        _check_count("num", num)
        if steps is not None:
            _check_count("steps", steps)
        labels = self.labels_for(num, labels)
        return generate(
            key, self.params_for(mesh), labels, self.guidance(w), model=self.model, flow=self.flow, num=num,
            shape=self.shape, method=sampler or self.default_method,
            steps=self.default_steps if steps is None else steps,
            return_trajectory=return_trajectory, track_speed=track_speed, mesh=mesh, timed=timed,
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
        w: guidance weight: any for the teacher, one in ``sampling.w_range`` for a
          guidance-conditioned student; a fixed-``w`` student has it baked in (pass None).
        """
        _check_count("num", num)
        _check_count("batch_size", batch_size)
        labels = self.labels_for(num, labels)
        keys = jax.random.split(key, -(-num // batch_size))
        out = []
        for i in tqdm.trange(len(keys), disable=not progress, desc="sampling"):
            lo, hi = i * batch_size, min(num, (i + 1) * batch_size)
            batch_labels = None if labels is None else labels[lo:hi]
            out.append(np.asarray(self.solve(keys[i], hi - lo, batch_labels, steps=steps, sampler=sampler, w=w).x))
        x = np.concatenate(out)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f"{np.sum(~np.isfinite(x))} sample values are not finite (w={w}, steps={steps}, "
                                     f"sampler={sampler}): a guidance weight this large overflows")
        return np.clip(x, -1.0, 1.0) if len(self.shape) == 3 else x

    @functools.cached_property
    def _local_params(self):
        device = jax.local_devices()[0]  # a replicated array's local copy, also across processes
        return jax.tree.map(lambda a: jax.device_put(a.addressable_data(0), device), self.params)

    def params_for(self, mesh=None):
        """The parameters to compute with: replicated on ``mesh`` when generation is sharded on it,
        else a copy on this process's first device (so unsharded sampling is not repeated on every
        device the checkpoint was restored onto)."""
        return self.params if mesh is not None else self._local_params

    def guidance_weight(self, w: Optional[float]) -> float:
        """The ``w`` to sample with: ``w``, or the default (:attr:`sampling`), checked.

        A fixed-``w`` student has its guidance baked in: it refuses a ``w`` (other than 0) and
        samples with one conditional pass. A guidance-conditioned student takes any ``w`` in
        its ``w_range``.
        """
        s = self.sampling
        if s.w_baked:
            if w not in (None, 0.0):
                raise ValueError(f"this distilled student has its guidance weight (w={s.w:g}) baked in; do not pass "
                                 "w (distill with distill.w_range for a student that takes w)")
            return 0.0
        w = float(s.w if w is None else w)
        if not math.isfinite(w):
            raise ValueError(f"w must be a finite number, got {w}")
        if s.w_range is not None and not s.w_range[0] <= w <= s.w_range[1]:
            raise ValueError(f"this guidance-conditioned student serves w in [{s.w_range[0]:g}, {s.w_range[1]:g}], "
                             f"got w={w:g}")
        return w

    def guidance(self, w: Optional[float] = None) -> Guidance:
        """The :class:`~kacjax.core.guidance.Guidance` it samples with at ``w`` (:meth:`guidance_weight`)."""
        return Guidance.for_model(self.model, self.guidance_weight(w))

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


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def load(workdir: str, stage: int = 0, *, chain: str = "", dtype: str = "float32") -> Generator:
    """Loads the EMA parameters of a stage of ``chain`` (0: teacher, k: k-th student, -1: last),
    sampling in ``dtype``; ``chain`` is the ``distill.name`` it was distilled under."""
    if isinstance(stage, bool) or not isinstance(stage, (int, np.integer)):
        raise TypeError(f"stage must be an int (0: teacher, k: k-th student, -1: last), got {stage!r}")
    return Generator.load(RunDir(workdir).resolve(stage, chain), dtype=dtype)
