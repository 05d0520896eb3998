"""The train state pytree and the update shared by teacher and student training.

Everything a step needs lives in :class:`TrainState`, so a checkpoint of it
resumes training exactly: the step's randomness is ``fold_in(rng, step)`` and the
data pipeline is a function of the step.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Parameters, their EMA, optimizer state and counters (all replicated).

    Attributes:
      step: int32 scalar, optimizer steps taken (skipped steps included).
      params: network parameters.
      ema_params: exponential moving average of ``params``.
      opt_state: optax state.
      rng: raw uint32 PRNG key ``(2,)``; step ``s`` uses ``fold_in(rng, s)``.
      nonfinite_streak: int32, consecutive steps skipped for a non-finite loss or gradient.
      nonfinite_total: int32, all skipped steps.
    """

    step: jax.Array
    params: Any
    ema_params: Any
    opt_state: Any
    rng: jax.Array
    nonfinite_streak: jax.Array
    nonfinite_total: jax.Array


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """Adam with global-norm clipping and an optional linear warm-up.

    Keys of ``train_cfg``: ``learning_rate``, ``warmup_steps`` (0: none),
    ``grad_clip`` (<= 0: none), ``b1``, ``b2``, ``weight_decay`` (0: Adam, else AdamW);
    the values are checked by :func:`kacjax.training.checks.check_train_config`.
    """
    lr = train_cfg.learning_rate
    schedule = optax.linear_schedule(0.0, lr, train_cfg.warmup_steps) if train_cfg.warmup_steps > 0 else lr
    adam = optax.adamw(schedule, b1=train_cfg.b1, b2=train_cfg.b2, weight_decay=train_cfg.weight_decay)
    if train_cfg.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(train_cfg.grad_clip), adam)
    return adam


def create(params, tx: optax.GradientTransformation, rng) -> TrainState:
    """A fresh state at step 0; the EMA starts at a copy of ``params`` (own buffers, donatable)."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=jax.tree.map(jnp.copy, params),
        opt_state=tx.init(params),
        rng=rng,
        nonfinite_streak=jnp.zeros((), jnp.int32),
        nonfinite_total=jnp.zeros((), jnp.int32),
    )


def step_rng(state: TrainState):
    """This step's key: ``fold_in(state.rng, state.step)``."""
    return jax.random.fold_in(state.rng, state.step)


def _all_finite(tree):
    """Whether every float leaf of ``tree`` is finite (a bool scalar)."""
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def apply_gradients(state: TrainState, loss, grads, tx, ema_decay: float):
    """One optimizer and EMA update, skipped when the loss or a gradient is not finite, or when the
    update itself would make a parameter, an EMA parameter or an optimizer moment non-finite (so no
    checkpoint ever holds one).

    Returns ``(new_state, metrics)`` with ``loss``, ``grad_norm`` and ``skipped``.
    """
    grad_norm = optax.tree.norm(grads)

    def update(current):
        params, ema_params, opt_state = current
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema_params = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema_params, params)
        new = (params, ema_params, opt_state)
        ok = _all_finite(new)
        return jax.lax.cond(ok, lambda: (new, ok), lambda: (current, ok))

    # One branch for the whole update: cheaper to compile than a select per leaf of three trees.
    (params, ema_params, opt_state), finite = jax.lax.cond(
        jnp.isfinite(loss) & jnp.isfinite(grad_norm), update, lambda current: (current, jnp.asarray(False)),
        (state.params, state.ema_params, state.opt_state))
    skipped = (~finite).astype(jnp.int32)
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        ema_params=ema_params,
        opt_state=opt_state,
        nonfinite_streak=jnp.where(finite, 0, state.nonfinite_streak + 1),
        nonfinite_total=state.nonfinite_total + skipped,
    )
    return new_state, {"loss": loss, "grad_norm": grad_norm, "skipped": skipped}


