"""The run directory and the metadata beside every checkpoint: the one module that knows either.

Layout of a workdir (docs/rundir.md)::

    teacher/                        the teacher: Orbax steps, metrics.jsonl, tensorboard/
    distill/stage<k>_<M>steps/      the student of stage k (M Euler steps), the same contents
    distill_<name>/stage<k>_<M>steps/   the stages of the chain named ``name`` (``distill.name``)
    samples/<run>_<method><steps>_w<w>.{png,npz}   the ``sample`` mode's output
    <report>.{json,md,png}          the ``evaluate`` mode's reports
    run.lock                        who runs here (host, pid, since): one run per workdir

Every checkpoint step holds the item ``meta`` (JSON), built here and nowhere else:

- ``role``: ``"teacher"`` or ``"student"``.
- ``config``: the config that trained it. Its ``model`` and ``flow`` sections define the
  network; a student's are its teacher's (students inherit their architecture).
- ``data``: ``{"shape": per-example shape, "num_classes": int or null}``.
- ``student`` (students only): the stage (``stage``, ``teacher_steps``, ``student_steps``,
  ``inner_steps``, ``num_steps``, ``learning_rate``), ``steps`` (its Euler steps), the
  teacher it learned from (``teacher_dir``, ``teacher_step``, ``teacher_role``) and how
  (``w``, the guidance weight baked in; ``w_range``, null or ``[lo, hi]`` for a
  guidance-conditioned student, which takes any ``w`` in that range and defaults to ``w``;
  ``w_draw``, how it drew ``w`` in training, null for a fixed-``w`` student; ``w_loss_power``,
  how its loss weighted the drawn ``w``, 0 for none; ``inner_method``, ``x_source``, ``loss_space``).
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
LOCK_FILE = "run.lock"  # kacjax.training.workdir_lock
_STAGE_RE = re.compile(r"^stage(\d+)_(\d+)steps$")
ARCHITECTURE_SECTIONS = ("model", "flow")
W_EMBEDDING_KEY = "w_embedding"  # set on students by the chain (distill.w_range), not by the user
W_HEAD_KEY = "w_head"  # likewise: the w-scaled output head of a conditioned student
COMPUTE_KEYS = ("dtype",)  # model keys that set how the network computes, not what it is
# keys added after checkpoints were written without them: a missing key means this value
ADDED_KEYS = {"flow": {"noise_dim": 1, "noise_process": "kac"}}


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

    def chain(self, name: str = "") -> str:
        """The directory of the distillation chain ``name`` (``""``: the default chain)."""
        return os.path.join(self.root, f"{DISTILL_DIR}_{name}" if name else DISTILL_DIR)

    def stage(self, index: int, student_steps: int, chain: str = "") -> str:
        """Checkpoints of stage ``index`` (1-based) of ``chain``, whose student takes ``student_steps`` steps."""
        return os.path.join(self.chain(chain), f"stage{index}_{student_steps}steps")

    def stages(self, chain: str = "") -> list:
        """Existing stage directories of ``chain``, ordered by stage number."""
        root = self.chain(chain)
        if not os.path.isdir(root):
            return []
        found = [(int(m.group(1)), name) for name in os.listdir(root) if (m := _STAGE_RE.match(name))]
        return [os.path.join(root, name) for _, name in sorted(found)]

    def checkpoint_dirs(self, chain: str = "") -> list:
        """Index 0 the teacher, then each existing stage of ``chain``."""
        return [self.teacher] + self.stages(chain)

    def resolve(self, stage: int, chain: str = "") -> str:
        """The directory of ``stage`` of ``chain`` (0: teacher, k: k-th student, -1: the last with a checkpoint)."""
        dirs = self.checkpoint_dirs(chain)
        existing = [d for d in dirs if has_checkpoint(d)]
        if not existing:
            raise CheckpointError(f"no checkpoint in {self.root}: train a teacher there first (kacjax --mode=train)")
        if chain and stage != 0 and len(existing) < 2:
            raise CheckpointError(f"the chain {chain!r} has no student in {self.chain(chain)}: distill it first "
                                  f"(kacjax --mode=distill --config.distill.name={chain})")
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


def canonical(section, ignore=()) -> str:
    """A config section as sorted JSON without its compute keys (``dtype``) and ``ignore``, so saved
    (lists) and live (tuples) sections of the same network compare equal."""
    dropped = (*COMPUTE_KEYS, *ignore)
    return json.dumps({k: v for k, v in _section(section).items() if k not in dropped}, sort_keys=True)


def check_architecture(saved_config, config, where: str, remedy: str, ignore=()) -> None:
    """Raises ``CheckpointError`` unless ``config`` has the ``model`` and ``flow`` of ``saved_config``.

    The compute dtype may differ: a float32 teacher can be resumed or distilled in bfloat16.
    ``ignore``: further model keys not compared.
    """
    for name in ARCHITECTURE_SECTIONS:
        saved, asked = (canonical({**ADDED_KEYS.get(name, {}), **_section(c[name])}, ignore)
                        for c in (saved_config, config))
        if saved != asked:
            raise CheckpointError(f"{where} holds a checkpoint for {name}={saved}, but the config asks for "
                                  f"{name}={asked}; {remedy}")


def teacher_meta(config, shape, num_classes) -> dict:
    """The JSON beside teacher checkpoints: enough to rebuild the network without data."""
    return {"role": "teacher", "config": config.to_dict(),
            "data": {"shape": list(shape), "num_classes": num_classes}}


def student_meta(stage_config, stage, recipe, teacher) -> dict:
    """The JSON beside a student's checkpoints.

    ``stage_config`` already carries the teacher's ``model`` and ``flow``; ``stage`` is a
    :class:`kacjax.training.steps.Stage`; ``recipe`` the chain's
    :class:`kacjax.training.recipe.DistillRecipe`; ``teacher`` the loaded
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
                        teacher_role=teacher.meta["role"], **recipe.to_meta()),
    }


class Sampling(NamedTuple):
    """How a checkpoint is meant to be sampled: ``method``, ``steps``, guidance weight ``w``.

    ``w_baked`` is True for fixed-``w`` students, whose guidance is in their weights (sample
    them with one conditional pass per step; ``w`` is the weight their first teacher used).
    ``w_range`` is ``(lo, hi)`` for a guidance-conditioned student, which takes any ``w``
    in that range as an input (one pass per step; ``w`` is its default); else None.
    """

    method: str
    steps: int
    w: float
    w_baked: bool
    w_range: Optional[tuple] = None


def sampling_of(meta: dict) -> Sampling:
    """The teacher's configured sampler, steps and ``w``; a student's Euler grid, ``w`` and ``w_range``."""
    student: Optional[dict] = meta.get("student")
    if student is not None:
        w_range = student.get("w_range")
        return Sampling("euler", int(student["steps"]), float(student["w"]), w_range is None,
                        tuple(w_range) if w_range else None)
    sample = meta["config"]["sample"]
    return Sampling(sample["method"], int(sample["steps"]), float(sample["w"]), False)
