"""Line-Kac noise: one 1-D Kac process along a random line, per group of ``d`` coordinates.

``N(s) = K(s) u``: ``K`` a Kac process (rate ``a``, speed ``c``; :mod:`~kacjax.core.kac`) and
``u`` uniform on the unit sphere of ``R^d``, drawn once per path. Any ``d >= 2``.

- Law: ``N / |N|`` is uniform on the sphere and ``|N| = |K(s)|``, whose law is the 1-D one
  folded: mass ``exp(-a s)`` on the sphere ``|n| = c s`` (no switch yet), a density inside.
  Per coordinate ``Var N_i(s) = Var K(s) / d``.
- Velocity: given ``N = n != 0``, ``(K, u)`` is ``(|n|, n/|n|)`` or ``(-|n|, -n/|n|)``, equally
  likely (``K`` and ``u`` are symmetric), and the 1-D velocity ``v_1`` is odd, so
  ``E[V | N = n] = v_1(|n|, s) n / |n|``: radial, ``|v| <= c``; ``c n / |n|`` on the sphere.

Arrays hold one path per row: positions are ``(..., d)``, times and flags broadcast to ``(...)``.
Pure ``jax.numpy``; float32 by default, float64 under ``jax_enable_x64``. Units: ``s`` time,
``n`` position, ``a`` rate (1 / time), ``c`` speed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kacjax.core import kac
from kacjax.core.draws import as_float, check_positive, row_norm

__all__ = ["check_dim", "sample", "simulate", "variance", "velocity"]


def check_dim(dim) -> None:
    """Raises ValueError unless ``dim`` is an int >= 2 (a line in ``R^1`` is the 1-D process itself)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"a line-Kac group's dim must be an int >= 2, got {dim!r}")


def _direction(key, shape):
    """Uniform unit vectors of ``shape`` ``(..., d)`` (normalised Gaussians)."""
    g = jax.random.normal(key, shape, as_float(0.0).dtype)
    return g / row_norm(g, keepdims=True)


def sample(key, t, shape, *, a, c):
    """Exact draws of ``K(t) u``, one path per row.

    Args:
      key: PRNG key.
      t: times >= 0, broadcastable to ``shape[:-1]``.
      shape: ``(..., d)`` with ``d >= 2``.
      a, c: switching rate (> 0) and speed (> 0).

    Returns:
      ``(n, on_sphere)``: positions of ``shape`` and a bool array of ``shape[:-1]`` marking draws
      with no switch (``|n| = c t``).
    """
    shape = tuple(shape)
    if not shape:
        raise ValueError("shape must end with the group's dim")
    check_dim(shape[-1])
    k_kac, k_dir = jax.random.split(key)
    k, on_sphere = kac.sample(k_kac, t, shape[:-1], a=a, c=c)
    return k[..., None] * _direction(k_dir, shape), on_sphere


def simulate(key, t, shape, *, a, c, max_flips):
    """Reference path simulation: ``K(t) u`` and ``V(t) u`` from :func:`kac.simulate`'s switching times.

    Returns ``(n, v, complete)``: positions and velocities of ``shape`` ``(..., d)`` and the
    per-row flag of :func:`kacjax.core.kac.simulate`.
    """
    shape = tuple(shape)
    check_dim(shape[-1])
    k_kac, k_dir = jax.random.split(key)
    k, v, complete = kac.simulate(k_kac, t, shape[:-1], a=a, c=c, max_flips=max_flips)
    u = _direction(k_dir, shape)
    return k[..., None] * u, v[..., None] * u, complete


def variance(t, *, a, c, dim):
    """Per-coordinate ``Var N_i(t) = Var K(t) / d``."""
    check_dim(dim)
    return kac.variance(t, a=a, c=c) / dim


def velocity(n, t, *, a, c, on_sphere=None):
    """``E[V(t) | N(t) = n] = v_1(|n|, t) n / |n|`` at rows ``n`` ``(..., d)``; ``|v| <= c``.

    Args:
      n, t: positions ``(..., d)`` and times broadcasting to ``n.shape[:-1]``.
      a, c: the line's Kac rate and speed.
      on_sphere: optional bool of ``n.shape[:-1]`` from :func:`sample`; when given it alone
        decides the rows with no switch (``v = c n / |n|``); when None, rows with ``|n| >= c t`` are.

    Returns:
      Velocities of ``n``'s shape; 0 where ``n = 0``.
    """
    check_positive(a=a, c=c)
    n = as_float(n)
    check_dim(n.shape[-1] if n.ndim else 0)
    radius = row_norm(n, keepdims=True)
    speed = kac.velocity(radius[..., 0], t, a=a, c=c, on_atom=on_sphere)
    return speed[..., None] * (n / jnp.where(radius > 0, radius, 1.0))
