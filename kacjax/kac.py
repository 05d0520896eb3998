"""The one-dimensional Kac process and its velocity field.

A Kac process started at 0 moves with speed ``c`` and reverses direction at the
jumps of a Poisson process of rate ``a``: ``K(t) = int_0^t c s (-1)^N(u) du`` with a
random initial sign ``s = +-1``. Its law at time ``t`` has two atoms of mass
``exp(-a t) / 2`` at ``+-c t`` and a continuous part on ``|x| < c t``.

All functions are pure ``jax.numpy``, jit/vmap friendly, and broadcast their
arguments. They compute in float32 by default and in float64 when ``jax_enable_x64``
is on. Units: ``t`` is time, ``x`` a position, ``a`` a rate (1 / time), ``c`` a speed.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e, i1e

__all__ = [
    "sample",
    "simulate",
    "density",
    "atom_mass",
    "variance",
    "cdf",
    "velocity",
    "check_positive",
]

# Poisson counts with mean below this are drawn by inverting the CDF in a batched
# loop; larger means fall back to jax.random.poisson (rejection sampling).
_POISSON_INVERSION_MAX_MEAN = 40.0
# Below this z = a r / c the Bessel ratio is replaced by its series.
_SMALL_Z = 1e-3
# Gauss-Legendre rule per panel and number of geometric panels in ``cdf``.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
_CDF_PANELS = 24


def check_positive(**values) -> None:
    """Raises ValueError unless every plain-number argument is finite and > 0.

    Traced or array values are not checked (they cannot be inspected under jit).
    """
    for name, value in values.items():
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(value, numbers.Real) and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _float_dtype():
    return jnp.result_type(float)


def _as_float(v):
    return jnp.asarray(v, _float_dtype())


def _two_prod(u, v):
    """Returns (p, e) with p = fl(u * v) and p + e == u * v exactly (Dekker)."""
    dtype = jnp.result_type(u, v)
    splitter = 4097.0 if dtype == jnp.float32 else 134217729.0

    def split(w):
        g = splitter * w
        hi = g - (g - w)
        return hi, w - hi

    p = u * v
    uh, ul = split(u)
    vh, vl = split(v)
    e = ((uh * vh - p) + uh * vl + ul * vh) + ul * vl
    return p, e


def _cone(x, t, c):
    """Returns (ct, gap, r): ct = c t, gap = ct - |x| and r = sqrt(c^2 t^2 - x^2).

    The gap is accurate to a few ulps even when |x| is within an ulp of c t, so the
    inside/outside decision and r near the cone agree with exact arithmetic.
    r is 0 outside the cone. Safe under grad (no sqrt of 0 on the taken branch).
    """
    ax = jnp.abs(x)
    ct, ct_err = _two_prod(_as_float(c), t)
    gap = (ct - ax) + ct_err
    q = gap * (ct + ax)
    inside = q > 0
    r = jnp.where(inside, jnp.sqrt(jnp.where(inside, q, 1.0)), 0.0)
    return ct, gap, r


def _broadcast(x, t):
    x, t = _as_float(x), _as_float(t)
    return jnp.broadcast_arrays(x, t)


def _uniform_open(key, shape, dtype):
    """Uniform on (0, 1): never exactly 0, so log() is finite."""
    return jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)


def _poisson(key, lam):
    """Exact Poisson(lam) counts, lam >= 0 an array; returns int32 of lam's shape."""
    k_inv, k_big = jax.random.split(key)
    lam_small = jnp.minimum(lam, _POISSON_INVERSION_MAX_MEAN)
    u = jax.random.uniform(k_inv, lam.shape, lam.dtype)
    # The loop stops once every draw is placed; the cap only guards against a
    # cumulative sum that rounds to just below u when u is within an ulp of 1.
    cap = int(_POISSON_INVERSION_MAX_MEAN + 20 * math.sqrt(_POISSON_INVERSION_MAX_MEAN) + 40)

    def active(state):
        n, _, cum = state
        return (u > cum) & (n < cap)

    def body(state):
        n, p, cum = state
        move = active(state)
        p = p * lam_small / (n + 1).astype(lam.dtype)
        return n + move.astype(n.dtype), p, jnp.where(move, cum + p, cum)

    p0 = jnp.exp(-lam_small)
    n, _, _ = jax.lax.while_loop(
        lambda s: jnp.any(active(s)), body, (jnp.zeros(lam.shape, jnp.int32), p0, p0)
    )
    big = lam > _POISSON_INVERSION_MAX_MEAN
    return jax.lax.cond(
        jnp.any(big),
        lambda: jnp.where(big, jax.random.poisson(k_big, jnp.where(big, lam, 1.0), lam.shape, jnp.int32), n),
        lambda: n,
    )


def _gamma_at_least_one(key, alpha):
    """Gamma(alpha, 1) draws for alpha >= 1 (array), batched Marsaglia-Tsang."""
    dtype = alpha.dtype
    d = alpha - 1.0 / 3.0
    scale = 1.0 / jnp.sqrt(9.0 * d)

    def body(state):
        key, done, out = state
        key, k_norm, k_unif = jax.random.split(key, 3)
        z = jax.random.normal(k_norm, alpha.shape, dtype)
        v = (1.0 + scale * z) ** 3
        log_u = jnp.log(_uniform_open(k_unif, alpha.shape, dtype))
        v_safe = jnp.where(v > 0, v, 1.0)
        accept = (v > 0) & (log_u < 0.5 * z * z + d - d * v_safe + d * jnp.log(v_safe))
        take = accept & ~done
        return key, done | accept, jnp.where(take, d * v_safe, out)

    init = (key, jnp.zeros(alpha.shape, bool), jnp.ones(alpha.shape, dtype))
    _, _, out = jax.lax.while_loop(lambda s: ~jnp.all(s[1]), body, init)
    return out


def sample(key, t, shape, *, a, c):
    """Exact draws of K(t) by the Poisson-Beta construction.

    Given n ~ Poisson(a t) direction switches, the time spent moving in the initial
    direction, divided by t, is Beta(floor(n/2) + 1, ceil(n/2)); with n = 0 the
    draw sits on an atom ``+-c t``.

    Args:
      key: PRNG key.
      t: times >= 0, broadcastable to ``shape``.
      shape: output shape.
      a, c: switching rate (> 0) and speed (> 0).

    Returns:
      ``(x, on_atom)``: positions of ``shape`` (float) and a bool array marking
      draws on ``+-c t`` (n = 0).
    """
    check_positive(a=a, c=c)
    dtype = _float_dtype()
    t = jnp.broadcast_to(_as_float(t), shape)
    k_pois, k_sign, k_gamma = jax.random.split(key, 3)
    n = _poisson(k_pois, _as_float(a) * t)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0).astype(dtype)
    half = n // 2
    alpha = (half + 1).astype(dtype)
    beta = jnp.maximum(n - half, 1).astype(dtype)
    g = _gamma_at_least_one(k_gamma, jnp.stack([alpha, beta]))
    frac = (g[0] - g[1]) / (g[0] + g[1])  # 2 B - 1 in [-1, 1]
    on_atom = n == 0
    x = sign * _as_float(c) * t * jnp.where(on_atom, 1.0, frac)
    return x, on_atom


def simulate(key, t, shape, *, a, c, max_flips):
    """Reference path simulation: K(t) and V(t) from explicit switching times.

    Draws up to ``max_flips`` exponential inter-switch times per path (``t`` must be
    a scalar). Slow and memory hungry; used to check :func:`sample` and
    :func:`velocity`. Raises nothing under jit: the returned ``complete`` flag is
    False where ``max_flips`` switches did not reach time ``t``.

    Returns:
      ``(x, v, complete)`` of ``shape``: position, current velocity ``+-c``, and
      whether the path was simulated to the end.
    """
    check_positive(a=a, c=c)
    dtype = _float_dtype()
    t = _as_float(t)
    k_sign, k_exp = jax.random.split(key)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0).astype(dtype)
    gaps = jax.random.exponential(k_exp, (*shape, max_flips), dtype) / _as_float(a)
    times = jnp.minimum(jnp.cumsum(gaps, axis=-1), t)
    starts = jnp.concatenate([jnp.zeros((*shape, 1), dtype), times[..., :-1]], axis=-1)
    direction = jnp.where(jnp.arange(max_flips) % 2 == 0, 1.0, -1.0).astype(dtype)
    before_last = jnp.sum(direction * (times - starts), axis=-1)
    last = (1.0 if max_flips % 2 == 0 else -1.0) * (t - times[..., -1])
    x = sign * _as_float(c) * (before_last + last)
    flips = jnp.sum(jnp.cumsum(gaps, axis=-1) < t, axis=-1)
    v = sign * _as_float(c) * jnp.where(flips % 2 == 0, 1.0, -1.0)
    return x, v, flips < max_flips


def atom_mass(t, *, a):
    """Total mass ``exp(-a t)`` of the two atoms at ``+-c t`` (half each)."""
    check_positive(a=a)
    return jnp.exp(-_as_float(a) * _as_float(t))


def variance(t, *, a, c):
    """``Var K(t) = (c^2 / a) [t - (1 - exp(-2 a t)) / (2 a)]``, stable for small a t."""
    check_positive(a=a, c=c)
    a, c, t = _as_float(a), _as_float(c), _as_float(t)
    lam = a * t
    # phi(lam) = lam - (1 - exp(-2 lam)) / 2 = lam^2 - 2/3 lam^3 + 1/3 lam^4 - ...
    series = lam * lam * (1.0 - lam * (2.0 / 3.0 - lam / 3.0))
    direct = lam + 0.5 * jnp.expm1(-2.0 * lam)
    phi = jnp.where(lam < 1e-2, series, direct)
    return (c / a) ** 2 * phi


def density(x, t, *, a, c):
    """Density of the continuous part of the law of K(t) at x; 0 for |x| >= c t.

    ``p = (a / 2c) e^{-a t} [I0(z) + a t I1(z) / z]`` with ``z = a r / c``,
    ``r = sqrt(c^2 t^2 - x^2)``. Its integral over x is ``1 - exp(-a t)``.
    """
    check_positive(a=a, c=c)
    x, t = _broadcast(x, t)
    a_, c_ = _as_float(a), _as_float(c)
    ct, gap, r = _cone(x, t, c)
    inside = gap > 0
    z = a_ * r / c_
    z_safe = jnp.where(z > _SMALL_Z, z, 1.0)
    # i1e(z) / z, with its series 1/2 (1 - z) near 0.
    i1e_over_z = jnp.where(z > _SMALL_Z, i1e(z_safe) / z_safe, 0.5 * (1.0 - z))
    # z - a t = -a x^2 / (c (r + c t)), without cancellation.
    log_scale = -a_ * x * x / (c_ * jnp.where(inside, r + ct, 1.0))
    p = a_ / (2 * c_) * jnp.exp(log_scale) * (i0e(z) + a_ * t * i1e_over_z)
    return jnp.where(inside, p, 0.0)


def _lower_tail(x, t, a, c):
    """P(K(t) <= -|x|) for |x| <= c t: half the atom plus the integrated density.

    With ``psi = angle(r, |x|)`` in ``[psi_x, pi/2]`` and ``lam = a t``, the continuous
    part is ``(lam/2) int exp(-2 lam sin^2(psi/2)) [cos(psi) i0e(lam cos psi) +
    i1e(lam cos psi)] dpsi``, integrated with Gauss-Legendre on panels that shrink
    geometrically towards ``psi_x``, where the integrand peaks.
    """
    _, _, r = _cone(x, t, c)
    lam = _as_float(a) * t
    psi_x = jnp.arctan2(jnp.abs(x), r)
    width = jnp.pi / 2 - psi_x
    k = jnp.arange(_CDF_PANELS, dtype=x.dtype)
    near = 2.0 ** -(k + 1)  # panel k spans distances [near, far] * width from psi_x
    far = jnp.where(k == 0, 1.0, 2.0 ** -k)
    near = jnp.where(k == _CDF_PANELS - 1, 0.0, near)
    mid, half = (far + near) / 2, (far - near) / 2
    offsets = mid[:, None] + half[:, None] * jnp.asarray(_GL_NODES, x.dtype)  # (panels, nodes)
    weights = half[:, None] * jnp.asarray(_GL_WEIGHTS, x.dtype)
    psi = psi_x[..., None, None] + width[..., None, None] * offsets
    lam_ = lam[..., None, None]
    cos_psi = jnp.cos(psi)
    z = lam_ * cos_psi
    integrand = jnp.exp(-2 * lam_ * jnp.sin(psi / 2) ** 2) * (cos_psi * i0e(z) + i1e(z))
    integral = width * jnp.sum(weights * integrand, axis=(-2, -1))
    return 0.5 * jnp.exp(-lam) + 0.5 * lam * integral


def cdf(x, t, *, a, c):
    """``P(K(t) <= x)``, both atoms included (right-continuous at ``+-c t``)."""
    check_positive(a=a, c=c)
    x, t = _broadcast(x, t)
    _, gap, _ = _cone(x, t, c)
    lower = _lower_tail(x, t, a, c)
    inside_value = jnp.where(x <= 0, lower, 1.0 - lower)
    # gap < 0: outside the cone; gap == 0 on the cone (and everywhere when t = 0).
    return jnp.where(gap > 0, inside_value, jnp.where(x >= 0, 1.0, jnp.where(gap == 0, lower, 0.0)))


def velocity(x, t, *, a, c, on_atom=None):
    """``E[V(t) | K(t) = x]``: the Kac flow's velocity field, bounded by c.

    Inside the cone ``v = x / (t + (r / c) I0(z) / I1(z))``, ``z = a r / c``; with
    the series ``(r/c) I0/I1 = (2/a)(1 + z^2/8)`` for tiny z. On the atoms ``v = +-c``.

    Args:
      x, t: positions and times (broadcast together).
      a, c: switching rate and speed.
      on_atom: optional bool array from :func:`sample`. When given, it alone decides
        which points are atoms (positions on ``+-c t`` are ambiguous in floating
        point); when None, points with ``|x| >= c t`` are atoms.
    """
    check_positive(a=a, c=c)
    x, t = _broadcast(x, t)
    a_, c_ = _as_float(a), _as_float(c)
    _, gap, r = _cone(x, t, c)
    z = a_ * r / c_
    big = z > _SMALL_Z
    z_safe = jnp.where(big, z, 1.0)
    lag = jnp.where(big, (r / c_) * i0e(z_safe) / i1e(z_safe), (2.0 / a_) * (1.0 + z * z / 8.0))
    inner = x / (t + lag)
    atom = (gap <= 0) if on_atom is None else jnp.broadcast_to(on_atom, x.shape)
    return jnp.where(atom, c_ * jnp.sign(x), inner)
