"""Random flights: the multi-dimensional Kac process in ``R^d``, ``d`` in {2, 4}.

A flight starts at 0 in a uniform direction, moves at speed ``c`` and takes a new
direction, uniform on the sphere, at the jumps of a Poisson process of rate ``a``. Its
law at time ``t`` has a singular part of mass ``exp(-a t)`` (no switch yet), uniform on
the sphere ``|x| = c t``, and a density inside the ball. Given ``n >= 1`` switches the
direction is uniform and ``rho = |x|^2 / (c t)^2`` is ``Beta(1, n/2)`` (``d = 2``) or
``Beta(2, n)`` (``d = 4``), which gives the closed forms below (Stadje 1987, Kolesnik and
Orsingher 2005 for the plane, Orsingher and De Gregorio 2007 for ``d = 4``); ``d = 3`` has
none in elementary functions and is refused. With ``w = sqrt(c^2 t^2 - |x|^2)``,
``u = a |x|^2 / (c^2 t)`` and ``q = a w^2 / (c^2 t)``:

- density, ``d = 2``: ``a / (2 pi c w) exp(-a t + a w / c)``; ``d = 4``:
  ``a / (pi^2 c^4 t^3) (2 + q) exp(-u)``;
- velocity ``E[V | X = x]``, ``d = 2``: ``c x / (c t + w)`` (free of ``a``); ``d = 4``:
  ``(x / 2t) (3 + q) / (2 + q)`` (speed ``3c/4`` just inside the sphere); on the sphere
  ``c x / |x|``. Both solve ``dp/dt + div(p v) = 0`` and are bounded by ``c``;
- continuous mass within radius ``r < c t``: ``1 - exp(-a (c t - w) / c)`` (``d = 2``) and
  ``1 - exp(-u) (1 + u (1 - rho))`` (``d = 4``).

A coordinate of a flight of rate ``a`` has, at long times, the variance of a 1-D Kac process
of rate ``a d / 2``. Arrays hold one flight per row: positions are ``(..., d)``, times and
flags broadcast to ``(...)``. Pure ``jax.numpy``, float32 by default, float64 under
``jax_enable_x64``. Units: ``t`` time, ``x`` position, ``a`` rate (1 / time), ``c`` speed.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc

from kacjax.core.draws import as_float, check_positive, float_dtype, poisson, row_norm, two_prod, uniform_and_bit
from kacjax.core.kac import atom_mass

__all__ = ["DIMS", "check_dim", "sample", "simulate", "density", "radial_cdf", "atom_mass", "velocity"]

DIMS = (2, 4)


def check_dim(dim) -> None:
    """Raises ValueError unless ``dim`` is 2 or 4, the dimensions with closed-form laws."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim not in DIMS:
        hint = " (d = 3 has no closed form in elementary functions)" if dim == 3 else ""
        raise ValueError(f"a random flight's dim must be one of {DIMS}, got {dim!r}{hint}")


def _check(dim, a, c) -> None:
    check_dim(dim)
    check_positive(a=a, c=c)


def _ball(x, t, c):
    """Scale-free coordinates of rows ``x (..., d)`` at time ``t``: ``(ct, gap, rho, w_hat)`` with
    ``ct = c t``, ``gap = c t - |x|`` (a few ulps accurate at the sphere, so the inside decision
    agrees with exact arithmetic), ``rho = |x|^2 / (c t)^2`` and ``w_hat = w / (c t) = sqrt(1 - rho)``
    (0 on and outside the sphere). Ratios, not squares of lengths: nothing underflows as t -> 0."""
    radius = row_norm(x)
    ct, ct_err = two_prod(as_float(c), t)
    gap = (ct - radius) + ct_err
    inside = gap > 0
    ct_safe = jnp.where(ct > 0, ct, 1.0)
    rho = jnp.square(radius / ct_safe)
    w_hat = jnp.sqrt(jnp.where(inside, (gap / ct_safe) * ((ct + radius) / ct_safe), 0.0))
    return ct, gap, rho, w_hat


def _rows(x, t, dim):
    x = as_float(x)
    if x.ndim == 0 or x.shape[-1] != dim:
        raise ValueError(f"positions must have a last axis of length dim={dim}, got shape {x.shape}")
    t = as_float(t)
    return x, jnp.broadcast_to(t, jnp.broadcast_shapes(t.shape, x.shape[:-1]))


def sample(key, t, shape, *, a, c, dim):
    """Exact draws of a random flight at time ``t``: a Poisson count, a Beta radius, a uniform direction.

    ``n ~ Poisson(a t)`` switches; ``n = 0`` puts the draw on the sphere ``|x| = c t``;
    otherwise ``rho = |x|^2 / (c t)^2`` is ``1 - U^(2/n)`` (``Beta(1, n/2)``, ``d = 2``) or
    ``1 - U1^(1/n) U2^(1/(n+1))`` (``Beta(2, n)``, a product of ``Beta(n, 1)`` and
    ``Beta(n + 1, 1)``; ``d = 4``). The direction is an angle (``d = 2``) or two angles and a
    uniform split of the squared radius between two planes (``d = 4``, uniform on ``S^3``).
    No rejection and no table: 3 (``d = 2``) or 6 (``d = 4``) random words per flight, more only
    where ``a t > 40``. Compiled once per ``shape``, dtype and shape of ``t``.

    Args:
      key: PRNG key.
      t: times >= 0, broadcastable to ``shape[:-1]``.
      shape: ``(..., dim)``, one flight per row.
      a, c: switching rate (> 0) and speed (> 0); dim: 2 or 4.

    Returns:
      ``(x, on_sphere)``: positions of ``shape`` and a bool array of ``shape[:-1]`` marking
      draws on the sphere (``n = 0``).
    """
    _check(dim, a, c)
    shape = tuple(shape)
    if not shape or shape[-1] != dim:
        raise ValueError(f"shape must end with dim={dim}, got {shape}")
    t = as_float(t)
    lead = shape[:-1]
    if t.ndim > len(lead) or any(m not in (1, n) for m, n in zip(t.shape[::-1], lead[::-1])):
        raise ValueError(f"t of shape {t.shape} does not broadcast to the flights' shape {lead}")
    return _sample(key, t, shape, a, c)


@functools.partial(jax.jit, static_argnums=2)
def _sample(key, t, shape, a, c):
    """:func:`sample` after argument checks."""
    dtype = float_dtype()
    *lead, dim = shape
    lead = tuple(lead)
    t = t.reshape((1,) * (len(lead) - t.ndim) + t.shape)
    k_count, k_chunks, k_rest = jax.random.split(key, 3)
    u_count, _ = uniform_and_bit(k_count, lead, dtype)
    n = poisson(k_chunks, u_count, as_float(a) * t)
    on_sphere = n == 0
    n_f = jnp.maximum(n, 1).astype(dtype)
    two_pi = 2.0 * math.pi
    if dim == 2:
        (u_rho, u_angle), _ = uniform_and_bit(k_rest, (2, *lead), dtype)
        log_rest = 2.0 * jnp.log(u_rho) / n_f  # log(1 - rho)
        angle = two_pi * u_angle
        direction = jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    else:
        (u_1, u_2, u_split, u_angle1, u_angle2), _ = uniform_and_bit(k_rest, (5, *lead), dtype)
        log_rest = jnp.log(u_1) / n_f + jnp.log(u_2) / (n_f + 1.0)
        first, second = jnp.sqrt(u_split), jnp.sqrt(1.0 - u_split)
        a1, a2 = two_pi * u_angle1, two_pi * u_angle2
        direction = jnp.stack([first * jnp.cos(a1), first * jnp.sin(a1), second * jnp.cos(a2),
                               second * jnp.sin(a2)], axis=-1)
    rho = jnp.where(on_sphere, 1.0, -jnp.expm1(log_rest))
    radius = as_float(c) * t * jnp.sqrt(rho)
    return radius[..., None] * direction, on_sphere


def simulate(key, t, shape, *, a, c, dim, max_switches):
    """Reference path simulation from explicit switching times and Gaussian-normalised directions.

    Draws ``max_switches`` exponential waiting times and ``max_switches + 1`` directions per
    flight (``t`` a scalar). Slow and memory hungry; the ground truth for :func:`sample` and
    :func:`velocity`.

    Returns:
      ``(x, v, switches)``: positions and current velocities of ``shape`` ``(..., dim)``, and the
      number of switches before ``t`` (int, ``shape[:-1]``: 0 on the sphere; a path is complete
      where it is below ``max_switches``).
    """
    _check(dim, a, c)
    dtype = float_dtype()
    shape = tuple(shape)
    lead, t = shape[:-1], as_float(t)
    k_gap, k_dir = jax.random.split(key)
    switch_times = jnp.cumsum(jax.random.exponential(k_gap, (*lead, max_switches), dtype), axis=-1) / as_float(a)
    normals = jax.random.normal(k_dir, (*lead, max_switches + 1, dim), dtype)
    directions = normals / jnp.linalg.norm(normals, axis=-1, keepdims=True)
    ends = jnp.minimum(jnp.concatenate([switch_times, jnp.full((*lead, 1), jnp.inf, dtype)], axis=-1), t)
    starts = jnp.concatenate([jnp.zeros((*lead, 1), dtype), ends[..., :-1]], axis=-1)
    x = as_float(c) * jnp.sum((ends - starts)[..., None] * directions, axis=-2)
    switches = jnp.sum(switch_times < t, axis=-1)
    v = as_float(c) * jnp.take_along_axis(directions, switches[..., None, None], axis=-2)[..., 0, :]
    return x, v, switches


def density(x, t, *, a, c, dim):
    """Density of the continuous part of the law at ``x`` ``(..., dim)``; 0 on and outside the
    sphere. Shape ``x.shape[:-1]``; its integral over the ball is ``1 - exp(-a t)``."""
    _check(dim, a, c)
    x, t = _rows(x, t, dim)
    a_, c_ = as_float(a), as_float(c)
    _, gap, rho, w_hat = _ball(x, t, c)
    inside = gap > 0
    t_safe = jnp.where(inside, t, 1.0)
    lam = a_ * t_safe
    if dim == 2:
        # a / (2 pi c w) exp(-a t + a w / c), with -a t + a w / c = -a t rho / (1 + w_hat)
        log_p = jnp.log(a_ / (2.0 * math.pi * c_ * c_ * t_safe * jnp.where(inside, w_hat, 1.0))) - lam * rho / (1.0 + w_hat)
    else:
        # a / (pi^2 c^4 t^3) (2 + q) exp(-u), q = a t w_hat^2, u = a t rho; in logs, so that a huge
        # prefactor (t -> 0) and a vanishing exp(-u) give inf or 0, never NaN
        log_p = jnp.log(a_ / (math.pi**2 * c_**4)) - 3.0 * jnp.log(t_safe) + jnp.log(2.0 + lam * w_hat**2) - lam * rho
    return jnp.where(inside, jnp.exp(log_p), 0.0)


def radial_cdf(r, t, *, a, c, dim):
    """``P(|X(t)| <= r)``, the sphere's mass ``exp(-a t)`` included for ``r >= c t``; ``r``, ``t`` broadcast."""
    _check(dim, a, c)
    r, t = jnp.broadcast_arrays(as_float(r), as_float(t))
    _, gap, rho, w_hat = _ball(r[..., None], t, c)
    lam = as_float(a) * t
    if dim == 2:
        mass = -jnp.expm1(-lam * rho / (1.0 + w_hat))  # 1 - exp(-a (c t - w) / c)
    else:
        u = lam * rho
        mass = gammainc(2.0, u) + u * rho * jnp.exp(-u)  # 1 - e^{-u}(1 + u (1 - rho)), both terms >= 0
    return jnp.where(r < 0, 0.0, jnp.where(gap > 0, mass, 1.0))


def velocity(x, t, *, a, c, dim, on_sphere=None):
    """``E[V(t) | X(t) = x]`` at rows ``x`` ``(..., dim)``: the flight's velocity field, ``|v| <= c``.

    Args:
      x, t: positions ``(..., dim)`` and times broadcasting to ``x.shape[:-1]``.
      a, c, dim: the flight's rate, speed and dimension.
      on_sphere: optional bool of ``x.shape[:-1]`` from :func:`sample`; when given it alone
        decides which rows are on the sphere (where ``v = c x / |x|``); when None, rows with
        ``|x| >= c t`` are.

    Returns:
      Velocities of ``x``'s shape; 0 at ``t = 0``.
    """
    _check(dim, a, c)
    x, t = _rows(x, t, dim)
    a_, c_ = as_float(a), as_float(c)
    ct, gap, _, w_hat = _ball(x, t, c)
    xi = x / jnp.where(ct > 0, ct, 1.0)[..., None]  # x / (c t); 0 at t = 0, where x = 0
    if dim == 2:
        inner = c_ * xi / (1.0 + w_hat[..., None])  # c x / (c t + w)
    else:
        q = (a_ * t * w_hat**2)[..., None]  # a w^2 / (c^2 t)
        inner = 0.5 * c_ * xi * (3.0 + q) / (2.0 + q)  # (x / 2t)(3 + q)/(2 + q)
    radius = row_norm(x, keepdims=True)
    outward = c_ * x / jnp.where(radius > 0, radius, 1.0)
    sphere = (gap <= 0) if on_sphere is None else jnp.broadcast_to(on_sphere, x.shape[:-1])
    return jnp.where(sphere[..., None], outward, inner)
