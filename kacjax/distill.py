"""Endpoint-only distillation (DistillKac, Algorithm 1) and the multi-stage chain.

Stage ``k`` trains a student that takes one Euler step of ``Delta = T / M_k`` where its
frozen teacher (the teacher model for stage 1, the previous student after that)
takes ``N_k = M_{k-1} / M_k`` steps of ``config.distill.inner_method``. One training
step: draw data ``x0, y`` and a grid index ``j ~ U{0..M-1}``, ``t = T - j Delta``;
build ``x_t`` (forward process, or a teacher rollout from the prior); the teacher
integrates ``[t, t - Delta]`` without gradient to ``x_hat``; the student predicts
``x_S = x_t - Delta u_S(x_t, t, y)``; the loss is ``mean |x_S - x_hat|^2`` (state
space) or ``mean |u_S - (x_t - x_hat) / Delta|^2`` (velocity space).

The stage-1 teacher is guided with weight ``distill.w``; students bake that
guidance in and are sampled with one conditional pass per step. Each stage writes
its own checkpoints (``workdir/distill/stage<k>_<M>steps``) with its config and
provenance; a finished stage is skipped, an unfinished one resumes.
"""

from __future__ import annotations

import copy
import os
import re

import jax
import jax.numpy as jnp

from kacjax import api, experiment, guidance, parallel, samplers, train_state
from kacjax.checkpoint import CheckpointError, Checkpointer
from kacjax.data import build_input
from kacjax.logs import MetricWriter
from kacjax.loop import fit
from kacjax.train import TEACHER_DIR

DISTILL_DIR = "distill"
X_SOURCES = ("forward", "rollout")
LOSS_SPACES = ("state", "velocity")
_STAGE_RE = re.compile(r"^stage(\d+)_(\d+)steps$")


def stage_dirs_in(workdir: str) -> list:
    """Existing stage directories of ``workdir``, ordered by stage number."""
    root = os.path.join(workdir, DISTILL_DIR)
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(root) if (m := _STAGE_RE.match(name))]
    return [os.path.join(root, name) for _, name in sorted(found)]


def stage_dir(workdir: str, stage: int, student_steps: int) -> str:
    return os.path.join(workdir, DISTILL_DIR, f"stage{stage}_{student_steps}steps")


def plan(config) -> list:
    """The chain as a list of dicts (stage, teacher_steps, student_steps, inner_steps, num_steps, lr).

    Raises ValueError for an impossible chain (non-integer step ratios, bad values).
    """
    d = config.distill
    grids = (d.teacher_steps, *d.student_steps)
    n = len(d.student_steps)
    if n == 0:
        raise ValueError("bad distill config: student_steps is empty")
    if len(d.train_steps) != n or len(d.learning_rates) != n:
        raise ValueError(
            f"bad distill config: train_steps ({len(d.train_steps)}) and learning_rates "
            f"({len(d.learning_rates)}) need one entry per stage ({n})"
        )
    if d.inner_method not in samplers.METHODS:
        raise ValueError(f"bad distill config: inner_method {d.inner_method!r} not in {samplers.METHODS}")
    if d.x_source not in X_SOURCES:
        raise ValueError(f"bad distill config: x_source {d.x_source!r} not in {X_SOURCES}")
    if d.loss_space not in LOSS_SPACES:
        raise ValueError(f"bad distill config: loss_space {d.loss_space!r} not in {LOSS_SPACES}")
    stages = []
    for k in range(n):
        coarse, fine = grids[k + 1], grids[k]
        if coarse < 1 or fine % coarse:
            raise ValueError(
                f"bad distill chain {grids}: stage {k + 1} goes from {fine} to {coarse} steps, "
                "which is not a whole number of teacher steps per student step"
            )
        if d.train_steps[k] < 0 or not d.learning_rates[k] > 0:
            raise ValueError(f"bad distill config: stage {k + 1} needs train_steps >= 0 and learning_rate > 0")
        stages.append(dict(stage=k + 1, teacher_steps=fine, student_steps=coarse, inner_steps=fine // coarse,
                           num_steps=d.train_steps[k], learning_rate=d.learning_rates[k]))
    return stages


def stage_config(config, st: dict):
    """The config a stage trains with: ``train`` updated by ``distill.train`` and the stage's values."""
    cfg = copy.deepcopy(config)
    with cfg.unlocked():
        cfg.train.update(dict(config.distill.train))
        cfg.train.update(num_steps=st["num_steps"], learning_rate=st["learning_rate"], label_dropout=0.0)
    return cfg


def make_distill_step(model, flow, tx, *, st: dict, dcfg, ema_decay: float, null_label, guide_teacher: bool,
                      mesh=None):
    """``(state, batch, teacher_params) -> (state, metrics)`` for one stage (not jitted).

    The teacher's parameters are an argument: never closed over, donated or saved.
    With the training ``mesh``, each device draws the noise of its own rows.
    """
    M, N = st["student_steps"], st["inner_steps"]
    delta = flow.T / M
    w = float(dcfg.w) if guide_teacher else 0.0

    def velocity(params, x, t, labels, weight):
        def apply(xx, tt, yy):
            return model.apply({"params": params}, xx, tt, yy, train=False)

        t = jnp.broadcast_to(t, (x.shape[0],))
        if null_label is None:
            return apply(x, t, None)
        return guidance.guided(apply, x, t, labels, weight, null_label)

    def step(state, batch, teacher_params):
        k_index, k_noise, k_dropout = jax.random.split(train_state.step_rng(state), 3)
        x0, labels = batch["x"], (batch["label"] if null_label is not None else None)
        B = x0.shape[0]
        j = jax.random.randint(k_index, (B,), 0, M)
        t = flow.T - j.astype(x0.dtype) * delta
        teacher_u = lambda x, tt: velocity(teacher_params, x, tt, labels, w)  # noqa: E731
        if dcfg.x_source == "forward":
            x_t, _ = flow.corrupt(k_noise, x0, t, mesh=mesh)  # the forward marginal at t
        else:
            rollout = samplers.integrate(
                teacher_u, flow.prior_sample(k_noise, x0.shape, mesh=mesh), method=dcfg.inner_method,
                steps=M * N, t_start=flow.T, return_trajectory=True,
            ).trajectory[::N]  # (M + 1, B, ...) states on the student grid
            x_t = rollout[j, jnp.arange(B)]
        x_t = jax.lax.stop_gradient(x_t)
        x_hat = samplers.integrate(
            teacher_u, x_t, method=dcfg.inner_method, steps=N, t_start=t, t_end=t - delta
        ).x
        x_hat = jax.lax.stop_gradient(x_hat)

        def loss_fn(params):
            u_s = model.apply({"params": params}, x_t, t, labels, train=True, rngs={"dropout": k_dropout})
            if dcfg.loss_space == "state":
                return jnp.mean(jnp.square(x_t - delta * u_s - x_hat))
            return jnp.mean(jnp.square(u_s - (x_t - x_hat) / delta))

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return train_state.apply_gradients(state, loss, grads, tx, ema_decay)

    return step


def _teacher_ready(workdir: str, config) -> Checkpointer:
    teacher_dir = os.path.join(workdir, TEACHER_DIR)
    latest = Checkpointer(teacher_dir).latest_step() if os.path.isdir(teacher_dir) else None
    if latest is None:
        raise CheckpointError(f"no teacher checkpoint in {teacher_dir}: train it first (kacjax --mode=train)")
    if latest < config.train.num_steps:
        raise CheckpointError(
            f"the teacher in {teacher_dir} stopped at step {latest} of {config.train.num_steps}: "
            "finish training it first (kacjax --mode=train resumes it)"
        )
    return latest


def run_chain(config, workdir: str, *, devices=None) -> list:
    """Runs (or resumes) every distillation stage; returns the stage directories."""
    experiment.validate_config(config)
    stages = plan(config)
    _teacher_ready(workdir, config)
    mesh = parallel.make_mesh(devices)
    d = config.distill
    batch_size = d.train.get("batch_size", config.train.batch_size)
    parallel.check_batch_size(batch_size, mesh)
    teacher_dir = os.path.join(workdir, TEACHER_DIR)
    done = []
    for st in stages:
        out_dir = stage_dir(workdir, st["stage"], st["student_steps"])
        cfg = stage_config(config, st)
        checkpointer = Checkpointer(out_dir, keep=cfg.train.keep_checkpoints)
        latest = checkpointer.latest_step()
        if latest is not None and latest >= st["num_steps"]:
            done.append(out_dir)
            teacher_dir = out_dir
            checkpointer.close()
            continue
        teacher = api.Generator(teacher_dir)
        data = build_input(cfg.data, global_batch_size=batch_size, seed=config.seed + 1000 * st["stage"],
                           process_index=jax.process_index(), process_count=jax.process_count())
        experiment.check_data_matches_model(data.num_classes, cfg.model)
        tx = train_state.make_optimizer(cfg.train)
        conditional = teacher.null_label is not None
        repl = parallel.replicated(mesh)
        teacher_params = jax.device_put(teacher.params, repl)
        state = experiment.restore_or_create(
            checkpointer, cfg, teacher.model, tx, teacher.shape, conditional, mesh,
            fresh=lambda: jax.device_put(  # own copies: the student's buffers are donated every step
                train_state.create(jax.tree.map(jnp.copy, teacher_params), tx,
                                   jax.random.PRNGKey(config.seed + st["stage"])), repl),
        )
        step_fn = experiment.jit_step(
            make_distill_step(teacher.model, teacher.flow, tx, st=st, dcfg=d, ema_decay=cfg.train.ema_decay,
                              null_label=teacher.null_label, guide_teacher=not teacher.is_student, mesh=mesh),
            mesh,
        )
        meta = {
            "role": "student",
            "config": cfg.to_dict(),
            "data": teacher.meta["data"],
            "student": dict(
                st, steps=st["student_steps"], teacher_dir=os.path.abspath(teacher_dir), teacher_step=teacher.step,
                teacher_role=teacher.meta["role"], w=float(d.w), inner_method=d.inner_method,
                x_source=d.x_source, loss_space=d.loss_space,
            ),
        }
        fit(
            state, lambda s, b: step_fn(s, b, teacher_params), data.iterate, mesh=mesh,
            num_steps=st["num_steps"], batch_size=batch_size, checkpointer=checkpointer, meta=meta,
            writer=MetricWriter(out_dir, prefix=f"stage{st['stage']}"), log_every=cfg.train.log_every,
            checkpoint_every=cfg.train.checkpoint_every, max_nonfinite_streak=cfg.train.max_nonfinite_streak,
        )
        checkpointer.close()
        done.append(out_dir)
        teacher_dir = out_dir
    return done
