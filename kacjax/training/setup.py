"""The one setup path: a config (and, for distillation, a stage and its teacher) -> the parts of a run.

:func:`teacher_run` and :func:`stage_run` build the mesh, the input, the model, the
flow, the optimizer, the train state (restored from a checkpoint when there is one)
and the jitted step; the teacher, every distillation stage, the benchmarks and the
tests all start here. The checks of the values they read come first, apart
(:mod:`kacjax.training.checks`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

import flax
import jax
import jax.numpy as jnp

from kacjax.core.flow import KacFlow
from kacjax.core.guidance import null_label_of, takes_w
from kacjax.data import Input, build_input
from kacjax.models import build_model
from kacjax.runtime import parallel
from kacjax.training import rundir, steps, train_state
from kacjax.training.checkpoint import Checkpointer, abstract_like
from kacjax.training.checks import check_data_matches_model
from kacjax.training.recipe import DistillRecipe


def _example_inputs(model, shape):
    x = jnp.zeros((1, *shape), jnp.float32)
    t = jnp.zeros((1,), jnp.float32)
    y = jnp.zeros((1,), jnp.int32) if null_label_of(model) is not None else None
    w = t if takes_w(model) else None
    return x, t, y, w


def init_params(model, rng, shape):
    """Freshly initialised parameters of ``model`` for per-example ``shape``."""
    # An RBG key: XLA:CPU compiles the per-parameter streams ~3x faster than threefry.
    rng = jax.random.wrap_key_data(jnp.concatenate([rng, rng]), impl="rbg")
    return model.init({"params": rng, "dropout": rng}, *_example_inputs(model, shape),
                      train=False)["params"]


def make_init(model, tx, shape):
    """``rng -> TrainState`` with freshly initialised parameters."""

    def init(rng):
        k_params, k_state = jax.random.split(rng)
        return train_state.create(init_params(model, k_params, shape), tx, k_state)

    return init


def student_params(model, teacher_params, rng, shape):
    """A fresh student's parameters: a copy of its teacher's, plus freshly initialised ones where
    the student has more (the guidance embedding of a conditioned student, whose last layer
    starts at zero, so the student starts as its teacher)."""
    teacher_flat = flax.traverse_util.flatten_dict(teacher_params)
    init = functools.partial(init_params, model, shape=shape)
    flat = flax.traverse_util.flatten_dict(jax.eval_shape(init, rng))
    for path, leaf in teacher_flat.items():
        if path not in flat or leaf.shape != flat[path].shape:
            raise ValueError(f"the student network does not have the teacher's parameter {'/'.join(path)} "
                             f"of shape {leaf.shape}")
    if flat.keys() != teacher_flat.keys():
        flat = flax.traverse_util.flatten_dict(jax.jit(init)(rng))
    flat.update({path: jnp.copy(leaf) for path, leaf in teacher_flat.items()})  # own copies: donated every step
    return flax.traverse_util.unflatten_dict(flat)


def abstract_state(model, tx, shape, mesh):
    """Shapes and shardings of a state, for restoring without initialising."""
    init = make_init(model, tx, shape)
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


def _state(checkpointer: Optional[Checkpointer], config, model, tx, shape, mesh, fresh):
    """The latest checkpoint's state if there is one (checking the architecture), else ``fresh()``."""
    if checkpointer is None or checkpointer.latest_step() is None:
        return fresh()
    rundir.check_architecture(checkpointer.read_meta()["config"], config, checkpointer.directory,
                              "use another workdir or the original config")
    _, state = checkpointer.restore_newest_intact(abstract_state(model, tx, shape, mesh),
                                                  delete_damaged=True)
    return state


def teacher_run(config, *, devices: Optional[Sequence] = None, checkpointer: Optional[Checkpointer] = None,
                data: Optional[Input] = None) -> Run:
    """A teacher's run from ``config`` (one :func:`~kacjax.training.checks.check_train_config` passed),
    resuming from ``checkpointer`` when it holds a step.

    ``data`` replaces the config's input (benchmarks feed synthetic images this way).
    """
    tr = config.train
    mesh = parallel.make_mesh(devices)
    if data is None:
        data = _input(config.data, tr.batch_size, config.seed, mesh)
    check_data_matches_model(data.num_classes, config.model)
    model, flow = build_model(config.model), KacFlow.from_config(config.flow)
    tx = train_state.make_optimizer(tr)

    def fresh():
        init = make_init(model, tx, data.shape)
        return jax.jit(init, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(config.seed))

    state = _state(checkpointer, config, model, tx, data.shape, mesh, fresh)
    step = jit_step(steps.make_train_step(model, flow, tx, label_dropout=tr.label_dropout, ema_decay=tr.ema_decay,
                                          mesh=mesh), mesh)
    return Run(mesh, data, model, flow, tx, state, step)


def stage_run(config, stage: steps.Stage, recipe: DistillRecipe, teacher, *, devices: Optional[Sequence] = None,
              checkpointer: Optional[Checkpointer] = None) -> Run:
    """One distillation stage's run: the student starts as a copy of ``teacher`` and learns from it.

    Args:
      config: the stage's config (:func:`kacjax.training.distill.stage_config`: the teacher's
        ``model`` and ``flow``, ``train`` merged with ``distill.train``).
      stage: the :class:`~kacjax.training.steps.Stage`; stage ``k`` draws its input from
        seed ``config.seed + 1000 k`` and a fresh student's randomness from ``config.seed + k``.
      recipe: how the student learns (:class:`~kacjax.training.recipe.DistillRecipe`).
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
    model = build_model(config.model)  # the teacher's network, with a guidance embedding when w-conditioned

    def fresh():
        rng = jax.random.PRNGKey(config.seed + stage.index)
        student = student_params(model, teacher_params, jax.random.fold_in(rng, 1), teacher.shape)
        return jax.device_put(train_state.create(student, tx, rng), repl)

    state = _state(checkpointer, config, model, tx, teacher.shape, mesh, fresh)
    step = jit_step(steps.make_distill_step(model, teacher.flow, tx, stage=stage, recipe=recipe,
                                            teacher_model=teacher.model, ema_decay=config.train.ema_decay,
                                            mesh=mesh), mesh)
    return Run(mesh, data, model, teacher.flow, tx, state, step, (teacher_params,))
