"""How a student learns from its teacher: the distillation recipe, read once from ``config.distill``.

:class:`DistillRecipe` is the one value that the checks, the step factory
(:func:`kacjax.training.steps.make_distill_step`), a student's checkpoint metadata
(:func:`kacjax.training.rundir.student_meta`) and the provenance check of a chain that is
resumed all use; the provenance check is equality. A new distillation knob is a field here
(its check, its metadata key and, in :data:`META_DEFAULTS`, what checkpoints written before
it did), its use in the step, and its default in :mod:`kacjax.configs.defaults`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from kacjax.core import samplers

X_SOURCES = ("forward", "rollout")
LOSS_SPACES = ("state", "velocity")
W_DRAWS = ("uniform", "ends")
# keys a student's metadata gained after checkpoints were written without them: what those students did
META_DEFAULTS = {"w_draw": "uniform", "w_loss_power": 0.0}


def _bad(message: str) -> ValueError:
    return ValueError(f"bad distill config: {message}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class DistillRecipe:
    """How every stage of a chain distils (the stages themselves are :class:`~kacjax.training.steps.Stage`).

    Attributes:
      w: the guidance weight of the chain: stage 1's teacher is guided with it and fixed-``w``
        students bake it in; a guidance-conditioned student's default ``w``.
      w_range: None (fixed ``w``), or ``(lo, hi)``: guidance-conditioned students take any ``w``
        in it as an input, drawn per example in training.
      w_draw: how a conditioned student draws ``w`` (``'uniform'``, ``'ends'``); None for fixed ``w``.
      w_loss_power: ``p >= 0``: a conditioned student's examples weigh ``(1 + w)^-p`` in its loss; 0: alike.
      inner_method: the teacher's sampler inside each student step (``samplers.METHODS``).
      x_source: where ``x_t`` comes from: ``'forward'`` (the forward process) or ``'rollout'``
        (the teacher from the prior).
      loss_space: ``'state'`` (endpoints) or ``'velocity'``.
    """

    w: float = 0.0
    w_range: Optional[tuple] = None
    w_draw: Optional[str] = None
    w_loss_power: float = 0.0
    inner_method: str = "ab2"
    x_source: str = "forward"
    loss_space: str = "state"

    def __post_init__(self):
        if not _number(self.w):
            raise _bad(f"w must be a finite number, got {self.w!r}")
        if self.w_range is not None and not (
                len(self.w_range) == 2 and all(map(_number, self.w_range))
                and self.w_range[0] < self.w_range[1] and self.w_range[0] <= self.w <= self.w_range[1]):
            raise _bad(f"w_range must be () or (lo, hi) with lo < hi holding the default w={self.w}, "
                       f"got {self.w_range}")
        if (self.w_draw is None) != (self.w_range is None) or self.w_draw not in (None, *W_DRAWS):
            raise _bad(f"w_draw {self.w_draw!r} not in {W_DRAWS}")
        if not (_number(self.w_loss_power) and self.w_loss_power >= 0 and (self.w_loss_power == 0 or self.w_range)):
            raise _bad(f"w_loss_power must be a number >= 0, and 0 unless w_range = (lo, hi) (it weights the loss "
                       f"over the drawn w), got {self.w_loss_power!r} with w_range={self.w_range or ()}")
        for name, allowed in (("inner_method", samplers.METHODS), ("x_source", X_SOURCES),
                              ("loss_space", LOSS_SPACES)):
            if getattr(self, name) not in allowed:
                raise _bad(f"{name} {getattr(self, name)!r} not in {allowed}")

    @classmethod
    def from_config(cls, distill_cfg) -> "DistillRecipe":
        """The recipe of ``config.distill``; raises ValueError naming the first bad value."""
        d = distill_cfg
        if d.w_draw not in W_DRAWS:  # checked even where a fixed-w chain ignores it
            raise _bad(f"w_draw {d.w_draw!r} not in {W_DRAWS}")
        w_range = tuple(d.w_range)
        if not all(map(_number, w_range)):
            raise _bad(f"w_range must hold numbers, got {w_range}")
        return cls(w=float(d.w), w_range=tuple(map(float, w_range)) or None, w_draw=d.w_draw if w_range else None,
                   w_loss_power=float(d.w_loss_power), inner_method=d.inner_method, x_source=d.x_source,
                   loss_space=d.loss_space)

    def to_meta(self) -> dict:
        """The recipe's keys of a student's ``student`` metadata (JSON)."""
        meta = dataclasses.asdict(self)
        meta["w_range"] = list(self.w_range) if self.w_range else None
        return meta

    @classmethod
    def from_meta(cls, student: dict) -> "DistillRecipe":
        """The recipe a student's ``student`` metadata records; keys it predates take :data:`META_DEFAULTS`."""
        w_range = tuple(student["w_range"]) if student.get("w_range") else None
        return cls(w=float(student["w"]), w_range=w_range,
                   w_draw=student.get("w_draw", META_DEFAULTS["w_draw"]) if w_range else None,
                   w_loss_power=float(student.get("w_loss_power", META_DEFAULTS["w_loss_power"])),
                   inner_method=student["inner_method"], x_source=student["x_source"],
                   loss_space=student["loss_space"])

    @property
    def conditioned(self) -> bool:
        """Whether the students take ``w`` as an input (``w_range`` set)."""
        return self.w_range is not None

    def teacher_w(self, stage_index: int) -> float:
        """The weight stage ``stage_index``'s teacher is guided with, for a fixed-``w`` chain: ``w``
        for stage 1 (the teacher model), 0 after (a student whose guidance is baked in)."""
        return self.w if stage_index == 1 else 0.0

    def differences(self, other: "DistillRecipe") -> dict:
        """``{key: (self's value, other's value)}`` of the metadata keys where the two differ."""
        mine, theirs = self.to_meta(), other.to_meta()
        return {key: (mine[key], theirs[key]) for key in mine if mine[key] != theirs[key]}
