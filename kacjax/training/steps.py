"""The training steps: Kac flow matching for the teacher, endpoint-only distillation for a student.

Both factories are pure and take explicit values (no config); they return
``(state, batch, ...) -> (state, metrics)`` functions that :mod:`kacjax.training.setup`
jits once. Distillation (DistillKac, Algorithm 1): a student of ``M`` steps takes one
Euler step of ``Delta = T / M`` where its frozen teacher takes ``N`` steps of
``inner_method``; see :func:`make_distill_step`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from kacjax.core import samplers
from kacjax.core.flow import sample_times
from kacjax.core.guidance import Guidance, drop_labels, null_label_of, velocity_field
from kacjax.training import train_state
from kacjax.training.recipe import DistillRecipe


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the distillation chain.

    Attributes:
      index: 1 for the first stage (its teacher is the teacher model), k for the k-th.
      teacher_steps: the teacher's grid (steps over ``[0, T]``).
      student_steps: the student's grid ``M``; ``Delta = T / M``.
      inner_steps: teacher sub-steps per student step, ``N = teacher_steps / student_steps``.
      num_steps: optimizer steps of the stage; learning_rate: its Adam learning rate.
    """

    index: int
    teacher_steps: int
    student_steps: int
    inner_steps: int
    num_steps: int
    learning_rate: float


def make_train_step(model, flow, tx, *, label_dropout: float, ema_decay: float, mesh=None):
    """``(state, batch) -> (state, metrics)`` for Kac flow matching (not jitted).

    batch: ``{'x': (B, ...) data in [-1, 1], 'label': (B,) int}``. Each example gets
    ``t ~ U[0, T]``, Kac noise and its exact target; labels are replaced by the null
    label (the model's ``num_classes``) with probability ``label_dropout`` (class-conditional
    models only). With the training ``mesh``, each device draws the noise of its own rows.
    """
    null_label = null_label_of(model)

    def step(state, batch):
        k_time, k_noise, k_label, k_dropout = jax.random.split(train_state.step_rng(state), 4)
        x0 = batch["x"]
        t = sample_times(k_time, x0.shape[0], flow)
        x_t, target = flow.corrupt(k_noise, x0, t, mesh=mesh)
        labels = None
        if null_label is not None:
            labels = drop_labels(k_label, batch["label"], label_dropout, null_label)

        def loss_fn(params):
            pred = model.apply({"params": params}, x_t, t, labels, train=True, rngs={"dropout": k_dropout})
            return jnp.mean(jnp.square(pred - target))

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return train_state.apply_gradients(state, loss, grads, tx, ema_decay)

    return step


def draw_w(key, shape, w_range, w_draw: str, dtype) -> jax.Array:
    """Guidance weights in ``w_range = (lo, hi)`` for a conditioned student's examples, ``shape``.

    ``'uniform'``: ``U[lo, hi]``. ``'ends'``: ``lo`` with probability 1/4, ``hi`` with 1/4, else
    ``U[lo, hi]``: the ends, where a student has only one side to interpolate from, are
    trained exactly.
    """
    lo, hi = w_range
    if w_draw == "uniform":  # from ``key`` itself: the draws of the chains distilled before w_draw existed
        return lo + (hi - lo) * jax.random.uniform(key, shape, dtype)
    k_uniform, k_end = jax.random.split(key)
    end = jax.random.randint(k_end, shape, 0, 4)
    w = lo + (hi - lo) * jax.random.uniform(k_uniform, shape, dtype)
    return jnp.where(end == 0, lo, jnp.where(end == 1, hi, w)).astype(dtype)


def weighted_loss(squared_error, w, w_loss_power: float) -> jax.Array:
    """The batch loss of ``squared_error`` ``(B, ...)``: its mean, or for a guidance-conditioned
    student (``w``, ``(B,)``) with ``w_loss_power = p > 0`` the mean of each example weighted by
    ``(1 + w)^-p`` and normalised over the batch, so that the large errors of strongly guided
    targets do not drown the weakly guided ones."""
    if w is None or w_loss_power == 0:
        return jnp.mean(squared_error)
    per_example = jnp.mean(squared_error.reshape(squared_error.shape[0], -1), axis=1)
    weights = (1.0 + w) ** -w_loss_power
    return jnp.sum(weights * per_example) / jnp.sum(weights)


def teacher_endpoint(u, x_t, t, delta, *, method: str, steps: int):
    """The teacher's target ``x_hat``: ``steps`` steps of ``method`` from ``x_t`` at ``t`` to ``t - delta``.

    ``u(x, t)`` is the teacher's velocity; ``x_t`` is ``(B, ...)``, ``t`` is ``(B,)``.
    """
    return samplers.integrate(u, x_t, method=method, steps=steps, t_start=t, t_end=t - delta).x


def make_distill_step(model, flow, tx, *, stage: Stage, recipe: DistillRecipe, teacher_model, ema_decay: float,
                      mesh=None):
    """``(state, batch, teacher_params) -> (state, metrics)`` for one stage (not jitted).

    One step: draw a grid index ``j ~ U{0..M-1}``, ``t = T - j Delta``; ``x_t`` from the
    forward process (``recipe.x_source='forward'``) or from a teacher rollout from the prior
    (``'rollout'``); the frozen ``teacher_model``, guided with ``recipe.teacher_w(stage.index)``
    (0 after stage 1: a fixed-``w`` student teacher has its guidance baked in), integrates
    ``[t, t - Delta]`` without gradient to ``x_hat`` with ``recipe.inner_method``; the student
    ``model`` predicts ``x_S = x_t - Delta u_S(x_t, t, y)``.
    Loss: ``mean |x_S - x_hat|^2`` (``loss_space='state'``) or ``mean |u_S - (x_t - x_hat) / Delta|^2``
    (``'velocity'``). For a guidance-conditioned recipe (``w_range = (lo, hi)``) each example
    draws ``w`` by ``w_draw`` (:func:`draw_w`), which guides the teacher (or is its input, when the
    teacher is itself conditioned) and is the student's input, and the loss weights examples by
    ``w_loss_power`` (:func:`weighted_loss`). Labels are used when the model is class-conditional.
    The teacher's parameters are an argument: never closed over, donated or saved. With
    the training ``mesh``, each device draws the noise of its rows.
    """
    M, N = stage.student_steps, stage.inner_steps
    delta = flow.T / M
    null_label = null_label_of(model)
    r = recipe

    def step(state, batch, teacher_params):
        rng = train_state.step_rng(state)
        k_index, k_noise, k_dropout = jax.random.split(rng, 3)
        x0, labels = batch["x"], (batch["label"] if null_label is not None else None)
        B = x0.shape[0]
        j = jax.random.randint(k_index, (B,), 0, M)
        t = flow.T - j.astype(x0.dtype) * delta
        w = draw_w(jax.random.fold_in(rng, 3), (B,), r.w_range, r.w_draw, x0.dtype) if r.conditioned else None
        teacher_guidance = Guidance.for_model(teacher_model, r.teacher_w(stage.index) if w is None else w)
        teacher_u = velocity_field(teacher_model, teacher_params, labels, teacher_guidance)
        if r.x_source == "forward":
            x_t, _ = flow.corrupt(k_noise, x0, t, mesh=mesh)  # the forward marginal at t
        else:
            rollout = samplers.integrate(
                teacher_u, flow.prior_sample(k_noise, x0.shape, mesh=mesh), method=r.inner_method,
                steps=M * N, t_start=flow.T, return_trajectory=True,
            ).trajectory[::N]  # (M + 1, B, ...) states on the student grid
            x_t = rollout[j, jnp.arange(B)]
        x_t = jax.lax.stop_gradient(x_t)
        x_hat = jax.lax.stop_gradient(teacher_endpoint(teacher_u, x_t, t, delta, method=r.inner_method, steps=N))

        def loss_fn(params):
            u_s = model.apply({"params": params}, x_t, t, labels, w, train=True, rngs={"dropout": k_dropout})
            if r.loss_space == "state":
                return weighted_loss(jnp.square(x_t - delta * u_s - x_hat), w, r.w_loss_power)
            return weighted_loss(jnp.square(u_s - (x_t - x_hat) / delta), w, r.w_loss_power)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return train_state.apply_gradients(state, loss, grads, tx, ema_decay)

    return step
