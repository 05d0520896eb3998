"""The ``distill`` mode: the chain of endpoint-only distillation stages (DistillKac, Algorithm 1).

Stage ``k`` trains a student that takes one Euler step of ``Delta = T / M_k`` where its
frozen teacher (the teacher model for stage 1, the previous student after that) takes
``N_k = M_{k-1} / M_k`` steps of ``config.distill.inner_method``
(:func:`kacjax.training.steps.make_distill_step`). The stage-1 teacher is guided with
weight ``distill.w``; students bake that guidance in and are sampled with one conditional
pass per step. With ``distill.w_range = (lo, hi)`` the students are guidance-conditioned
instead: ``w`` is an input (``model.w_embedding``, and ``model.w_head``: an output head
scaled by ``w``), drawn per example by ``distill.w_draw`` in training, and any ``w`` in the
range is served with one conditional pass per step.
``distill.name`` keeps several chains of one teacher apart. Students inherit their
architecture: ``model``, ``flow`` and the data shape come from the teacher's saved
metadata, and a config asking for another is refused. Each stage writes its own
checkpoints with its config and provenance (:mod:`kacjax.training.rundir`); a finished
stage is skipped, an unfinished one resumes.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Optional, Sequence

from kacjax.training import rundir, setup
from kacjax.training.checkpoint import CheckpointError, Checkpointer
from kacjax.training.checks import check_train_config
from kacjax.training.loop import fit_run
from kacjax.training.recipe import DistillRecipe
from kacjax.training.steps import Stage
from kacjax.training.trained import Trained


def _check_chain(config) -> None:
    """Raises ValueError for an impossible chain, naming the first bad stage (a step count that is
    not a whole multiple of the next), or for bad distillation values."""
    d = config.distill
    grids = (d.teacher_steps, *d.student_steps)
    n = len(d.student_steps)
    if n == 0:
        raise ValueError("bad distill config: student_steps is empty")
    if not d.teacher_steps >= 1:
        raise ValueError(f"bad distill config: distill.teacher_steps must be >= 1, got {d.teacher_steps}")
    for k in range(n):
        fine, coarse = grids[k], grids[k + 1]
        if coarse < 1 or fine % coarse:
            raise ValueError(
                f"bad distill chain {grids}: stage {k + 1} goes from {fine} to {coarse} steps, "
                "which is not a whole number of teacher steps per student step"
            )
    if len(d.train_steps) != n or len(d.learning_rates) != n:
        raise ValueError(
            f"bad distill config: train_steps ({len(d.train_steps)}) and learning_rates "
            f"({len(d.learning_rates)}) need one entry per stage ({n})"
        )
    DistillRecipe.from_config(d)  # the recipe's values: guidance, inner sampler, source of x_t, loss
    if not (isinstance(d.name, str) and re.fullmatch(r"[\w.-]*", d.name)):
        raise ValueError(f"bad distill config: name must be '' or letters, digits, '.', '-' and '_', got {d.name!r}")
    for k in range(n):
        if d.train_steps[k] < 0 or not d.learning_rates[k] > 0:
            raise ValueError(f"bad distill config: stage {k + 1} needs train_steps >= 0 and learning_rate > 0")


def plan(config) -> list:
    """The chain of a config that :func:`check_distill_config` passed, as a list of
    :class:`~kacjax.training.steps.Stage`."""
    d = config.distill
    grids = (d.teacher_steps, *d.student_steps)
    return [Stage(index=k + 1, teacher_steps=grids[k], student_steps=grids[k + 1], inner_steps=grids[k] // grids[k + 1],
                  num_steps=int(d.train_steps[k]), learning_rate=float(d.learning_rates[k]))
            for k in range(len(d.student_steps))]


def _with_stage_train(config, stage: Stage):
    """A copy of ``config`` whose ``train`` is updated by ``distill.train`` and the stage's values."""
    cfg = copy.deepcopy(config)
    with cfg.unlocked():
        cfg.train.update(dict(config.distill.train))
        cfg.train.update(num_steps=stage.num_steps, learning_rate=stage.learning_rate, label_dropout=0.0)
    return cfg


def check_distill_config(config, mesh=None) -> None:
    """Raises ValueError for an impossible chain or bad distillation values, and for ``train``
    values a stage would run with (with a ``mesh``, a batch that does not split over it)."""
    _check_chain(config)
    for stage in plan(config):
        check_train_config(_with_stage_train(config, stage), mesh)


def stage_config(config, stage: Stage, recipe: DistillRecipe, teacher: Trained):
    """The config a stage trains with: the teacher's ``model`` and ``flow`` (with the config's compute
    ``dtype``), and ``train`` updated by ``distill.train`` and the stage's values.

    Raises CheckpointError when ``config`` asks for another architecture than the teacher's.
    """
    rundir.check_architecture(teacher.config, config, teacher.directory,
                              "a student inherits its teacher's architecture: drop the override at distill time",
                              ignore=(rundir.W_EMBEDDING_KEY, rundir.W_HEAD_KEY))
    cfg = _with_stage_train(config, stage)
    with cfg.unlocked():
        for name in rundir.ARCHITECTURE_SECTIONS:
            cfg[name] = teacher.config[name]
        for key in rundir.COMPUTE_KEYS:  # how to compute is the current config's choice
            if key in config.model:
                cfg.model[key] = config.model[key]
        if recipe.conditioned:  # guidance-conditioned students take w as an input, with a w head
            cfg.model[rundir.W_EMBEDDING_KEY] = True
            cfg.model[rundir.W_HEAD_KEY] = True
    return cfg


def _check_provenance(stage_dir: str, recipe: DistillRecipe) -> None:
    """A finished or started stage must have been distilled with ``recipe`` (guidance, inner sampler,
    source of ``x_t``, loss); raises CheckpointError naming what differs otherwise, before any work on
    that chain."""
    if not rundir.has_checkpoint(stage_dir):
        return
    found = DistillRecipe.from_meta(Checkpointer(stage_dir).read_meta()["student"])
    if found != recipe:
        differ = ", ".join(f"{key}={saved!r} (the config asks for {asked!r})"
                           for key, (saved, asked) in found.differences(recipe).items())
        raise CheckpointError(f"{stage_dir} was distilled with {differ}: use another workdir or another "
                              "distill.name for this chain")


def _check_teacher_step(stage_dir: str, teacher_dir: str) -> None:
    """A started stage must have learned from the step its teacher now holds (the teacher trained further,
    its old students would be reused and compared with a teacher they did not learn from); raises
    CheckpointError otherwise, before any work on the chain."""
    if not rundir.has_checkpoint(stage_dir):
        return
    learned_from = Checkpointer(stage_dir).read_meta()["student"]["teacher_step"]
    now = rundir.latest_step(teacher_dir)
    if now is not None and learned_from != now:
        raise CheckpointError(f"{stage_dir} was distilled from step {learned_from} of {teacher_dir}, which now holds "
                              f"step {now}: delete {os.path.dirname(stage_dir)} to distill the chain again from it, "
                              "or choose another distill.name")


def _finished_teacher(layout: rundir.RunDir, config) -> int:
    teacher_dir = layout.teacher
    latest = rundir.latest_step(teacher_dir)
    if latest is None:
        raise CheckpointError(f"no teacher checkpoint in {teacher_dir}: train it first (kacjax --mode=train)")
    if latest < config.train.num_steps:
        raise CheckpointError(
            f"the teacher in {teacher_dir} stopped at step {latest} of {config.train.num_steps}: "
            "finish training it first (kacjax --mode=train resumes it)"
        )
    return latest


def distill(config, workdir: str, *, devices: Optional[Sequence] = None) -> list:
    """The ``distill`` mode: runs (or resumes) every stage of a config that :func:`check_distill_config`
    passed (:func:`kacjax.run` checks every mode first); returns the stage directories."""
    stages = plan(config)
    layout = rundir.RunDir(workdir)
    _finished_teacher(layout, config)
    recipe = DistillRecipe.from_config(config.distill)
    out_dirs = [layout.stage(stage.index, stage.student_steps, config.distill.name) for stage in stages]
    for teacher_dir, out_dir in zip([layout.teacher, *out_dirs], out_dirs):
        _check_provenance(out_dir, recipe)
        _check_teacher_step(out_dir, teacher_dir)
    teacher_dir, done = layout.teacher, []
    for stage, out_dir in zip(stages, out_dirs):
        latest = rundir.latest_step(out_dir)
        if latest is None or latest < stage.num_steps:
            teacher = Trained.load(teacher_dir)
            cfg = stage_config(config, stage, recipe, teacher)
            checkpointer = Checkpointer(out_dir, keep=cfg.train.keep_checkpoints)
            run = setup.stage_run(cfg, stage, recipe, teacher, devices=devices, checkpointer=checkpointer)
            meta = rundir.student_meta(cfg, stage, recipe, teacher)
            fit_run(run, cfg.train, num_steps=stage.num_steps, checkpointer=checkpointer, meta=meta,
                    prefix=f"stage{stage.index}")
            checkpointer.close()
        done.append(out_dir)
        teacher_dir = out_dir
    return done
