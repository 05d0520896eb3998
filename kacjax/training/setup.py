"""The one setup path: a config (and, for distillation, a stage and its teacher) -> the parts of a run.

:func:`teacher_run` and :func:`stage_run` build the mesh, the input, the model, the
flow, the optimizer, the train state (restored from a checkpoint when there is one)
and the jitted step; the teacher, every distillation stage, the benchmarks and the
tests all start here. :func:`check_train_config` holds the checks of the sections a
teacher run reads.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

import flax
import jax
import jax.numpy as jnp

from kacjax.core.flow import KacFlow
from kacjax.core.guidance import takes_w
from kacjax.data import Input, build_input, build_source, check_data_config, example_shape
from kacjax.models import build_model, check_model
from kacjax.runtime import parallel
from kacjax.training import rundir, steps, train_state
from kacjax.training.checkpoint import Checkpointer, abstract_like


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"bad config: {message}")


def check_train_config(config, mesh=None) -> None:
    """Raises ValueError naming the first impossible value of ``flow``, ``data``, ``model`` or ``train``.

    With a ``mesh``, the global batch must also split evenly over its devices and the processes.
    """
    flow = KacFlow.from_config(config.flow)
    check_data_config(config.data)
    shape = example_shape(config.data)
    flow.check_example_shape(shape)
    nc = config.model.get("num_classes")
    _require(nc is None or nc >= 1, f"model.num_classes must be None or >= 1, got {nc}")
    dropout = config.model.get("dropout")
    _require(dropout is None or 0.0 <= dropout < 1.0, f"model.dropout must be in [0, 1), got {dropout}")
    check_model(config.model, shape)  # unknown names and fields; the UNet's levels, heads and GroupNorms
    tr = config.train
    _require(tr.batch_size > 0, f"train.batch_size must be > 0, got {tr.batch_size}")
    _require(tr.num_steps >= 1, f"train.num_steps must be >= 1, got {tr.num_steps}")
    _require(0.0 <= tr.ema_decay < 1.0, f"train.ema_decay must be in [0, 1), got {tr.ema_decay}")
    _require(0.0 <= tr.label_dropout < 1.0, f"train.label_dropout must be in [0, 1), got {tr.label_dropout}")
    for name in ("b1", "b2"):  # Adam's decay rates: 1 never forgets the first moment and trains on NaN
        _require(0.0 <= tr[name] < 1.0, f"train.{name} must be in [0, 1), got {tr[name]}")
    _require(tr.learning_rate > 0, f"train.learning_rate must be > 0, got {tr.learning_rate}")
    _require(tr.warmup_steps >= 0, f"train.warmup_steps must be >= 0, got {tr.warmup_steps}")
    for name in ("log_every", "checkpoint_every", "keep_checkpoints", "max_nonfinite_streak"):
        _require(tr[name] >= 1, f"train.{name} must be >= 1, got {tr[name]}")
    if mesh is not None:
        parallel.check_batch_size(tr.batch_size, mesh)
    source = build_source(config.data)  # the data itself: a dataset not prepared yet is refused here, before work
    check_data_matches_model(source.num_classes, config.model)
    size = source.num_examples
    _require(size is None or tr.batch_size <= size,
             f"train.batch_size={tr.batch_size} exceeds the dataset's {size} examples")


def check_data_matches_model(data_num_classes, model_cfg) -> None:
    """A conditional model needs labelled data with the same number of classes."""
    nc = model_cfg.get("num_classes")
    if nc is not None and data_num_classes != nc:
        raise ValueError(
            f"model.num_classes={nc} but the dataset has {data_num_classes} classes "
            "(use None for an unconditional model)"
        )


def null_label(model_cfg):
    """The label index meaning 'no class' (``num_classes``), or None when unconditional."""
    return model_cfg.get("num_classes")


def _example_inputs(model, shape, conditional: bool):
    x = jnp.zeros((1, *shape), jnp.float32)
    t = jnp.zeros((1,), jnp.float32)
    y = jnp.zeros((1,), jnp.int32) if conditional else None
    w = t if takes_w(model) else None
    return x, t, y, w


def init_params(model, rng, shape, conditional: bool):
    """Freshly initialised parameters of ``model`` for per-example ``shape``."""
    # An RBG key: XLA:CPU compiles the per-parameter streams ~3x faster than threefry.
    rng = jax.random.wrap_key_data(jnp.concatenate([rng, rng]), impl="rbg")
    return model.init({"params": rng, "dropout": rng}, *_example_inputs(model, shape, conditional),
                      train=False)["params"]


def make_init(model, tx, shape, conditional: bool):
    """``rng -> TrainState`` with freshly initialised parameters."""

    def init(rng):
        k_params, k_state = jax.random.split(rng)
        return train_state.create(init_params(model, k_params, shape, conditional), tx, k_state)

    return init


def student_params(model, teacher_params, rng, shape, conditional: bool):
    """A fresh student's parameters: a copy of its teacher's, plus freshly initialised ones where
    the student has more (the guidance embedding of a conditioned student, whose last layer
    starts at zero, so the student starts as its teacher)."""
    teacher_flat = flax.traverse_util.flatten_dict(teacher_params)
    init = functools.partial(init_params, model, shape=shape, conditional=conditional)
    flat = flax.traverse_util.flatten_dict(jax.eval_shape(init, rng))
    for path, leaf in teacher_flat.items():
        if path not in flat or leaf.shape != flat[path].shape:
            raise ValueError(f"the student network does not have the teacher's parameter {'/'.join(path)} "
                             f"of shape {leaf.shape}")
    if flat.keys() != teacher_flat.keys():
        flat = flax.traverse_util.flatten_dict(jax.jit(init)(rng))
    flat.update({path: jnp.copy(leaf) for path, leaf in teacher_flat.items()})  # own copies: donated every step
    return flax.traverse_util.unflatten_dict(flat)


def abstract_state(model, tx, shape, conditional: bool, mesh):
    """Shapes and shardings of a state, for restoring without initialising."""
    init = make_init(model, tx, shape, conditional)
    return abstract_like(jax.eval_shape(init, jax.random.PRNGKey(0)), parallel.replicated(mesh))


def jit_step(step_fn, mesh):
    """Jits ``(state, batch, *rest) -> (state, metrics)``: state donated and replicated."""
    repl = parallel.replicated(mesh)
    return jax.jit(step_fn, out_shardings=(repl, repl), donate_argnums=0)


@dataclasses.dataclass(frozen=True)
class Run:
    """The parts of one training run.

    Attributes:
      mesh: the ``('data',)`` mesh; data: this process's :class:`~kacjax.data.Input`.
      model, flow, tx: the network, the Kac flow, the optimizer.
      state: the replicated train state (fresh, or restored from the checkpointer given).
      step: jitted ``(state, batch, *step_args) -> (state, metrics)``; the state is donated.
      step_args: the step's other arguments (a student's frozen teacher parameters).
    """

    mesh: Any
    data: Input
    model: Any
    flow: KacFlow
    tx: Any
    state: Any
    step: Callable
    step_args: tuple = ()

    def train_step(self, state, batch):
        """``step(state, batch, *step_args)``: the update the training loop calls."""
        return self.step(state, batch, *self.step_args)


def _input(data_cfg, batch_size: int, seed: int, mesh) -> Input:
    parallel.check_batch_size(batch_size, mesh)
    return build_input(data_cfg, global_batch_size=batch_size, seed=seed,
                       process_index=jax.process_index(), process_count=jax.process_count())


def _state(checkpointer: Optional[Checkpointer], config, model, tx, shape, conditional, mesh, fresh):
    """The latest checkpoint's state if there is one (checking the architecture), else ``fresh()``."""
    if checkpointer is None or checkpointer.latest_step() is None:
        return fresh()
    rundir.check_architecture(checkpointer.read_meta()["config"], config, checkpointer.directory,
                              "use another workdir or the original config")
    _, state = checkpointer.restore_newest_intact(abstract_state(model, tx, shape, conditional, mesh),
                                                  delete_damaged=True)
    return state


def teacher_run(config, *, devices: Optional[Sequence] = None, checkpointer: Optional[Checkpointer] = None,
                data: Optional[Input] = None) -> Run:
    """A teacher's run from ``config`` (one :func:`check_train_config` passed), resuming from
    ``checkpointer`` when it holds a step.

    ``data`` replaces the config's input (benchmarks feed synthetic images this way).
    """
    tr = config.train
    mesh = parallel.make_mesh(devices)
    if data is None:
        data = _input(config.data, tr.batch_size, config.seed, mesh)
    check_data_matches_model(data.num_classes, config.model)
    model, flow = build_model(config.model), KacFlow.from_config(config.flow)
    tx = train_state.make_optimizer(tr)
    null = null_label(config.model)
    conditional = null is not None

    def fresh():
        init = make_init(model, tx, data.shape, conditional)
        return jax.jit(init, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(config.seed))

    state = _state(checkpointer, config, model, tx, data.shape, conditional, mesh, fresh)
    step = jit_step(steps.make_train_step(model, flow, tx, label_dropout=tr.label_dropout, ema_decay=tr.ema_decay,
                                    null_label=null, mesh=mesh), mesh)
    return Run(mesh, data, model, flow, tx, state, step)


def stage_run(config, stage: steps.Stage, teacher, *, devices: Optional[Sequence] = None,
              checkpointer: Optional[Checkpointer] = None) -> Run:
    """One distillation stage's run: the student starts as a copy of ``teacher`` and learns from it.

    Args:
      config: the stage's config (:func:`kacjax.training.distill.stage_config`: the teacher's
        ``model`` and ``flow``, ``train`` merged with ``distill.train``).
      stage: the :class:`~kacjax.training.steps.Stage`; stage ``k`` draws its input from
        seed ``config.seed + 1000 k`` and a fresh student's randomness from ``config.seed + k``.
      teacher: the frozen :class:`kacjax.training.trained.Trained` teacher; its parameters
        become ``step_args`` (an explicit, never donated argument of the step).
    """
    mesh = parallel.make_mesh(devices)
    data = _input(config.data, config.train.batch_size, config.seed + 1000 * stage.index, mesh)
    if tuple(data.shape) != tuple(teacher.shape) or data.num_classes != teacher.num_classes:
        raise ValueError(f"the stage's data has shape {data.shape} and {data.num_classes} classes, but the "
                         f"teacher in {teacher.directory} was trained on {teacher.shape} and "
                         f"{teacher.num_classes}: distill on the teacher's dataset")
    tx = train_state.make_optimizer(config.train)
    repl = parallel.replicated(mesh)
    teacher_params = jax.device_put(teacher.params, repl)
    conditional = teacher.null_label is not None
    model = build_model(config.model)  # the teacher's network, with a guidance embedding when w-conditioned

    def fresh():
        rng = jax.random.PRNGKey(config.seed + stage.index)
        student = student_params(model, teacher_params, jax.random.fold_in(rng, 1), teacher.shape, conditional)
        return jax.device_put(train_state.create(student, tx, rng), repl)

    state = _state(checkpointer, config, model, tx, teacher.shape, conditional, mesh, fresh)
    d = config.distill
    step = jit_step(steps.make_distill_step(
        model, teacher.flow, tx, stage=stage, teacher_model=teacher.model,
        teacher_w=0.0 if teacher.is_student else float(d.w), w_range=tuple(d.w_range) or None,
        inner_method=d.inner_method, x_source=d.x_source, w_draw=d.w_draw, w_loss_power=float(d.w_loss_power),
        loss_space=d.loss_space, ema_decay=config.train.ema_decay, null_label=teacher.null_label,
        mesh=mesh), mesh)
    return Run(mesh, data, model, teacher.flow, tx, state, step, (teacher_params,))
