"""The run directory and the metadata beside every checkpoint: the one module that knows either.

Layout of a workdir (docs/rundir.md)::

    teacher/                        the teacher: Orbax steps, metrics.jsonl, tensorboard/
    distill/stage<k>_<M>steps/      the student of stage k (M Euler steps), the same contents
    samples/<run>_<method><steps>_w<w>.{png,npz}   the ``sample`` mode's output
    <report>.{json,md,png}          the ``evaluate`` mode's reports

Every checkpoint step holds the item ``meta`` (JSON), built here and nowhere else:

- ``role``: ``"teacher"`` or ``"student"``.
- ``config``: the config that trained it. Its ``model`` and ``flow`` sections define the
  network; a student's are its teacher's (students inherit their architecture).
- ``data``: ``{"shape": per-example shape, "num_classes": int or null}``.
- ``student`` (students only): the stage (``stage``, ``teacher_steps``, ``student_steps``,
  ``inner_steps``, ``num_steps``, ``learning_rate``), ``steps`` (its Euler steps), the
  teacher it learned from (``teacher_dir``, ``teacher_step``, ``teacher_role``) and how
  (``w``, the guidance weight baked in; ``inner_method``, ``x_source``, ``loss_space``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import NamedTuple, Optional

from kacjax.training.checkpoint import CheckpointError, Checkpointer

TEACHER_DIR = "teacher"
DISTILL_DIR = "distill"
SAMPLES_DIR = "samples"
EVAL_DIR = "eval"
_STAGE_RE = re.compile(r"^stage(\d+)_(\d+)steps$")
ARCHITECTURE_SECTIONS = ("model", "flow")
COMPUTE_KEYS = ("dtype",)  # model keys that set how the network computes, not what it is


def latest_step(directory: str) -> Optional[int]:
    """The newest finished checkpoint step in ``directory``, or None (creates nothing)."""
    return Checkpointer(directory).latest_step() if os.path.isdir(directory) else None


def has_checkpoint(directory: str) -> bool:
    """Whether ``directory`` holds at least one finished checkpoint step."""
    return latest_step(directory) is not None


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths inside one workdir (``root``); nothing is created until a mode writes."""

    root: str

    @property
    def teacher(self) -> str:
        return os.path.join(self.root, TEACHER_DIR)

    def stage(self, index: int, student_steps: int) -> str:
        """Checkpoints of stage ``index`` (1-based), whose student takes ``student_steps`` steps."""
        return os.path.join(self.root, DISTILL_DIR, f"stage{index}_{student_steps}steps")

    def stages(self) -> list:
        """Existing stage directories, ordered by stage number."""
        root = os.path.join(self.root, DISTILL_DIR)
        if not os.path.isdir(root):
            return []
        found = [(int(m.group(1)), name) for name in os.listdir(root) if (m := _STAGE_RE.match(name))]
        return [os.path.join(root, name) for _, name in sorted(found)]

    def checkpoint_dirs(self) -> list:
        """Index 0 the teacher, then each existing distillation stage."""
        return [self.teacher] + self.stages()

    def resolve(self, stage: int) -> str:
        """The directory of ``stage`` (0: teacher, k: k-th student, -1: the last with a checkpoint)."""
        dirs = self.checkpoint_dirs()
        existing = [d for d in dirs if has_checkpoint(d)]
        if not existing:
            raise CheckpointError(f"no checkpoint in {self.root}: train a teacher there first (kacjax --mode=train)")
        if stage == -1:
            return existing[-1]
        if not 0 <= stage < len(dirs) or dirs[stage] not in existing:
            available = [dirs.index(d) for d in existing]
            raise CheckpointError(f"stage {stage} has no checkpoint in {self.root}; available: {available}")
        return dirs[stage]

    def samples(self, run_dir: str, method: str, steps: int, w_label: str) -> str:
        """Path prefix (no extension) of the samples of the run in ``run_dir``."""
        name = os.path.basename(run_dir)
        return os.path.join(self.root, SAMPLES_DIR, f"{name}_{method}{steps}_w{w_label}")

    def report(self, filename: str) -> str:
        """Path of an evaluation report file, e.g. ``nfe_report.json``."""
        return os.path.join(self.root, filename)

    def evaluation(self, filename: str) -> str:
        """Path of one evaluation row's partial sums or finished result, under ``eval/``."""
        return os.path.join(self.root, EVAL_DIR, filename)


def _section(section) -> dict:
    return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def canonical(section) -> str:
    """A config section as sorted JSON without its compute keys (``dtype``), so saved (lists) and
    live (tuples) sections of the same network compare equal."""
    return json.dumps({k: v for k, v in _section(section).items() if k not in COMPUTE_KEYS}, sort_keys=True)


def check_architecture(saved_config, config, where: str, remedy: str) -> None:
    """Raises ``CheckpointError`` unless ``config`` has the ``model`` and ``flow`` of ``saved_config``.

    The compute dtype may differ: a float32 teacher can be resumed or distilled in bfloat16.
    """
    for name in ARCHITECTURE_SECTIONS:
        saved, asked = canonical(saved_config[name]), canonical(config[name])
        if saved != asked:
            raise CheckpointError(f"{where} holds a checkpoint for {name}={saved}, but the config asks for "
                                  f"{name}={asked}; {remedy}")


def teacher_meta(config, shape, num_classes) -> dict:
    """The JSON beside teacher checkpoints: enough to rebuild the network without data."""
    return {"role": "teacher", "config": config.to_dict(),
            "data": {"shape": list(shape), "num_classes": num_classes}}


def student_meta(stage_config, stage, teacher, *, w: float, inner_method: str, x_source: str,
                 loss_space: str) -> dict:
    """The JSON beside a student's checkpoints.

    ``stage_config`` already carries the teacher's ``model`` and ``flow``; ``stage`` is a
    :class:`kacjax.training.distill.Stage`; ``teacher`` the loaded
    :class:`kacjax.training.trained.Trained` it learns from.
    """
    return {
        "role": "student",
        "config": stage_config.to_dict(),
        "data": teacher.meta["data"],
        "student": dict(stage=stage.index, teacher_steps=stage.teacher_steps, student_steps=stage.student_steps,
                        inner_steps=stage.inner_steps, num_steps=stage.num_steps,
                        learning_rate=stage.learning_rate, steps=stage.student_steps,
                        teacher_dir=os.path.abspath(teacher.directory), teacher_step=teacher.step,
                        teacher_role=teacher.meta["role"], w=float(w), inner_method=inner_method,
                        x_source=x_source, loss_space=loss_space),
    }


class Sampling(NamedTuple):
    """How a checkpoint is meant to be sampled: ``method``, ``steps``, guidance weight ``w``.

    ``w_baked`` is True for students, whose guidance is in their weights (sample them
    with one conditional pass per step; ``w`` is the weight their first teacher used).
    """

    method: str
    steps: int
    w: float
    w_baked: bool


def sampling_of(meta: dict) -> Sampling:
    """The teacher's configured sampler, steps and ``w``; a student's Euler grid and baked-in ``w``."""
    student: Optional[dict] = meta.get("student")
    if student is not None:
        return Sampling("euler", int(student["steps"]), float(student["w"]), True)
    sample = meta["config"]["sample"]
    return Sampling(sample["method"], int(sample["steps"]), float(sample["w"]), False)
