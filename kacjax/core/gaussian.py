"""Gaussian noise paths, the baselines the Kac flow is compared with: ``N(s) = sigma m(s) eps``.

``eps ~ N(0, I)`` is drawn once per path, so the path is determined by its value at any ``s > 0``
and the velocity given ``N = n`` is exact: ``E[V | N = n] = n m'(s) / m(s)``. Per coordinate
``Var N_i(s) = sigma^2 m(s)^2``. Two paths (``PATHS``):

- ``"brownian"``: ``m(s) = sqrt(s)``, the law of ``sigma W(s)``; with ``sigma^2 = c^2 / a`` this is
  the Kac noise's diffusion limit (``a, c -> inf`` at fixed ``c^2 / a``). Velocity ``n / (2 s)``,
  the probability-flow ODE's; its RMS ``sigma / (2 sqrt(s))`` is unbounded as ``s -> 0``.
- ``"linear"``: ``m(s) = s / sqrt(S)`` with ``S`` the horizon (the noise clock at ``t = T``), so
  ``Var N_i(S) = sigma^2 S`` as for ``brownian``. Velocity ``n / s`` (``sigma eps / sqrt(S)``,
  bounded in ``s``). With ``f = 1 - t/T`` and ``g = t`` the flow is Gaussian flow matching, the
  rectified-flow / conditional-OT path ``x_t = (1 - t/T) x0 + (t/T) sigma sqrt(T) eps``.

At ``s = 0`` every draw is 0 and the velocity is returned as 0 (the ``brownian`` field has no
finite limit there; the ``linear`` one's is not a function of ``n = 0``); training draws
``s = 0`` with probability 0. Pure ``jax.numpy``; float32 by default, float64 under
``jax_enable_x64``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kacjax.core.draws import as_float, check_positive

PATHS = ("brownian", "linear")

__all__ = ["PATHS", "sample", "variance", "velocity"]


def _check(path, horizon) -> None:
    if path not in PATHS:
        raise ValueError(f"a Gaussian path must be one of {PATHS}, got {path!r}")
    check_positive(horizon=horizon)


def _scale(path, t, horizon):
    """``m(t)``."""
    return jnp.sqrt(t) if path == "brownian" else t / jnp.sqrt(as_float(horizon))


def sample(key, t, shape, *, path, sigma, horizon):
    """Draws ``sigma m(t) eps`` of ``shape``; ``t >= 0`` broadcasts to ``shape``.

    Returns ``(n, no_flag)``: the draws and an all-False bool array of ``shape`` (a Gaussian path
    has no boundary; the flag keeps the interface of the Kac noises).
    """
    _check(path, horizon)
    check_positive(sigma=sigma)
    t = as_float(t)
    eps = jax.random.normal(key, tuple(shape), t.dtype)
    return as_float(sigma) * _scale(path, t, horizon) * eps, jnp.zeros(shape, bool)


def variance(t, *, path, sigma, horizon):
    """Per-coordinate ``Var N_i(t) = sigma^2 m(t)^2``."""
    _check(path, horizon)
    return as_float(sigma) ** 2 * _scale(path, as_float(t), horizon) ** 2


def velocity(n, t, *, path, horizon):
    """``E[V(t) | N(t) = n] = n m'(t) / m(t)``: ``n / (2t)`` (``brownian``) or ``n / t`` (``linear``);
    0 at ``t = 0``."""
    _check(path, horizon)
    n, t = jnp.broadcast_arrays(as_float(n), as_float(t))
    rate = (0.5 if path == "brownian" else 1.0) / jnp.where(t > 0, t, 1.0)
    return jnp.where(t > 0, n * rate, 0.0)
