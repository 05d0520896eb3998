"""ODE samplers for ``dx/dt = u(x, t)`` on a uniform time grid, as loops inside jit.

Each sampler integrates from ``t_start`` to ``t_end`` (usually ``T`` down to 0, so
the step ``h = (t_end - t_start) / steps`` is negative) and reports the exact
number of velocity evaluations (NFE):

- ``euler``: ``x += h u(x, t)``; 1 NFE per step.
- ``midpoint``: ``x += h u(x + h/2 u(x, t), t + h/2)``; 2 NFE per step.
- ``ab2`` (Adams-Bashforth 2): ``x += h (3/2 u_i - 1/2 u_{i-1})``, first step
  Euler; 1 NFE per step.

``u`` takes ``(x, t)`` with ``t`` a scalar array and returns an array of ``x``'s shape.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

__all__ = ["METHODS", "Solution", "check_method", "nfe", "time_grid", "integrate"]

METHODS = ("euler", "midpoint", "ab2")
_NFE_PER_STEP = {"euler": 1, "midpoint": 2, "ab2": 1}

Velocity = Callable[[jax.Array, jax.Array], jax.Array]


class Solution(NamedTuple):
    """Result of :func:`integrate`.

    Attributes:
      x: the state at ``t_end``.
      nfe: number of velocity evaluations (a Python int).
      trajectory: states on the grid, shape ``(steps + 1, *x.shape)``, or None.
      times: the grid, shape ``(steps + 1,)`` (or ``(steps + 1, B)`` for per-example grids).
      max_speed: with ``track_speed``, each example's largest ``|u|`` over all coordinates
        and evaluations, shape ``(B,)`` (NaN if a velocity was not finite); else None.
    """

    x: jax.Array
    nfe: int
    trajectory: Optional[jax.Array]
    times: jax.Array
    max_speed: Optional[jax.Array] = None


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown sampler {method!r}; choose one of {METHODS}")


def nfe(method: str, steps: int) -> int:
    """Velocity evaluations that ``integrate(method, steps)`` makes."""
    check_method(method)
    return _NFE_PER_STEP[method] * steps


def time_grid(steps: int, t_start, t_end, dtype=None) -> jax.Array:
    """``steps + 1`` equally spaced times from ``t_start`` to ``t_end``.

    ``t_start`` and ``t_end`` are scalars or arrays of one shape ``S`` (one grid per
    example); the result has shape ``(steps + 1, *S)``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    dtype = dtype or jnp.result_type(float)
    t_start, t_end = jnp.asarray(t_start, dtype), jnp.asarray(t_end, dtype)
    frac = jnp.arange(steps + 1, dtype=dtype).reshape((-1,) + (1,) * t_start.ndim) / steps
    return (1 - frac) * t_start + frac * t_end  # exact at both ends


def integrate(
    u: Velocity,
    x: jax.Array,
    *,
    method: str,
    steps: int,
    t_start,
    t_end=0.0,
    return_trajectory: bool = False,
    track_speed: bool = False,
) -> Solution:
    """Integrates ``dx/dt = u(x, t)`` from ``t_start`` to ``t_end`` in ``steps`` steps.

    ``t_start``/``t_end`` are scalars, or ``(B,)`` arrays giving each example of the
    batch ``x`` (``(B, ...)``) its own grid; ``u`` then receives ``(B,)`` times.
    ``track_speed`` also returns each example's largest ``|u|`` (a per-example
    reduction: no cross-example, so no cross-device, traffic).
    """
    check_method(method)
    times = time_grid(steps, t_start, t_end, x.dtype)
    h_t = times[1] - times[0]
    h = h_t.reshape(h_t.shape + (1,) * (x.ndim - h_t.ndim))
    per_example_axes = tuple(range(1, x.ndim))

    def speed(v, top):
        if not track_speed:
            return top
        return jnp.maximum(top, jnp.max(jnp.abs(v), axis=per_example_axes))  # NaN propagates

    def step(carry: Any, t):
        x, u_prev, first, top = carry
        if method == "euler":
            u_now = u(x, t)
            top = speed(u_now, top)
            x_next = x + h * u_now
        elif method == "midpoint":
            u_now = u(x, t)
            u_mid = u(x + 0.5 * h * u_now, t + 0.5 * h_t)
            top = speed(u_mid, speed(u_now, top))
            x_next = x + h * u_mid
        else:
            u_now = u(x, t)
            top = speed(u_now, top)
            increment = jnp.where(first, u_now, 1.5 * u_now - 0.5 * u_prev)
            x_next = x + h * increment
            u_prev = u_now
        return (x_next, u_prev, jnp.zeros_like(first), top), (x_next if return_trajectory else None)

    init = (x, jnp.zeros_like(x), jnp.ones((), bool), jnp.zeros(x.shape[:1], x.dtype))
    (x_end, _, _, top), path = jax.lax.scan(step, init, times[:-1])
    trajectory = jnp.concatenate([x[None], path], axis=0) if return_trajectory else None
    return Solution(x_end, nfe(method, steps), trajectory, times, top if track_speed else None)
