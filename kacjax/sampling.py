"""Generation: integrate the (guided) learned velocity from the Kac prior at T down to 0."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from kacjax import guidance, samplers


def velocity_field(model, params, labels, *, w, null_label):
    """``u(x, t)`` for the samplers: the network at time t (scalar or ``(B,)``), guided when ``w != 0``.

    labels: ``(B,)`` int or None (unconditional models).
    """

    def apply(x, t_batch, y):
        return model.apply({"params": params}, x, t_batch, y, train=False)

    def u(x, t):
        t_batch = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
        if null_label is None:
            return apply(x, t_batch, None)
        return guidance.guided(apply, x, t_batch, labels, w, null_label)

    return u


@functools.partial(
    jax.jit,
    static_argnames=("w", "model", "flow", "num", "shape", "method", "steps", "null_label", "return_trajectory"),
)
def generate(
    key,
    params,
    labels,
    w,
    *,
    model,
    flow,
    num: int,
    shape: tuple,
    method: str,
    steps: int,
    null_label=None,
    return_trajectory: bool = False,
):
    """Draws ``num`` samples of per-example ``shape``.

    Args:
      key: PRNG key for the prior.
      params: network parameters (usually the EMA).
      labels: ``(num,)`` int labels, or None for an unconditional model.
      w: guidance weight (``u_w = (1 + w) u_y - w u_null``), a Python float (static: each
        weight compiles once; ``w = 0`` makes one network call per step). Ignored when
        unconditional.

    Returns:
      :class:`kacjax.samplers.Solution` with ``x`` of shape ``(num, *shape)`` (not clipped).
    """
    x_T = flow.prior_sample(key, (num, *shape))
    u = velocity_field(model, params, labels, w=w, null_label=null_label)
    return samplers.integrate(
        u, x_T, method=method, steps=steps, t_start=flow.T, t_end=0.0, return_trajectory=return_trajectory
    )
