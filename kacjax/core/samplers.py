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
    """

    x: jax.Array
    nfe: int
    trajectory: Optional[jax.Array]
    times: jax.Array


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
) -> Solution:
    """Integrates ``dx/dt = u(x, t)`` from ``t_start`` to ``t_end`` in ``steps`` steps.

    ``t_start``/``t_end`` are scalars, or ``(B,)`` arrays giving each example of the
    batch ``x`` (``(B, ...)``) its own grid; ``u`` then receives ``(B,)`` times.
    """
    check_method(method)
    times = time_grid(steps, t_start, t_end, x.dtype)
    h_t = times[1] - times[0]
    h = h_t.reshape(h_t.shape + (1,) * (x.ndim - h_t.ndim))

    def step(carry: Any, t):
        x, u_prev, first = carry
        if method == "euler":
            x_next = x + h * u(x, t)
        elif method == "midpoint":
            x_mid = x + 0.5 * h * u(x, t)
            x_next = x + h * u(x_mid, t + 0.5 * h_t)
        else:
            u_now = u(x, t)
            increment = jnp.where(first, u_now, 1.5 * u_now - 0.5 * u_prev)
            x_next = x + h * increment
            u_prev = u_now
        return (x_next, u_prev, jnp.zeros_like(first)), (x_next if return_trajectory else None)

    init = (x, jnp.zeros_like(x), jnp.ones((), bool))
    (x_end, _, _), path = jax.lax.scan(step, init, times[:-1])
    trajectory = jnp.concatenate([x[None], path], axis=0) if return_trajectory else None
    return Solution(x_end, nfe(method, steps), trajectory, times)
