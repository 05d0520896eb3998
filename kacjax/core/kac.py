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

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e, i1e

from kacjax.core.draws import as_float, check_positive, float_dtype, poisson, two_prod, uniform_and_bit

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

# Rejected Beta proposals are redrawn within blocks of up to _MAX_BLOCK entries,
# through a buffer of 1 / _BUFFER_FRACTION of the block.
_MAX_BLOCK = 1024
_BUFFER_FRACTION = 32
# Row length of the two-level prefix sum.
_PREFIX_BLOCK = 32
# Below this z = a r / c the Bessel ratio is replaced by its series.
_SMALL_Z = 1e-3
# Gauss-Legendre rule per panel and number of geometric panels in ``cdf``.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
_CDF_PANELS = 24


def _cone(x, t, c):
    """Returns (ct, gap, r): ct = c t, gap = ct - |x| and r = sqrt(c^2 t^2 - x^2).

    The gap is accurate to a few ulps even when |x| is within an ulp of c t, so the
    inside/outside decision and r near the cone agree with exact arithmetic.
    r is 0 outside the cone. Safe under grad (no sqrt of 0 on the taken branch).
    """
    ax = jnp.abs(x)
    ct, ct_err = two_prod(as_float(c), t)
    gap = (ct - ax) + ct_err
    q = gap * (ct + ax)
    inside = q > 0
    r = jnp.where(inside, jnp.sqrt(jnp.where(inside, q, 1.0)), 0.0)
    return ct, gap, r


def _broadcast(x, t):
    x, t = as_float(x), as_float(t)
    return jnp.broadcast_arrays(x, t)


def _beta_proposal(key, n, dtype):
    """One proposal ``y = 2B - 1``, ``B ~ Beta(ceil(n/2), floor(n/2) + 1)``, per element.

    ``n`` is an int array of switch counts. For ``n <= 2`` the draw is exact in
    closed form (``B = U`` or ``1 - sqrt(U)``) and always accepted; for ``n >= 3``
    it is Cheng's (1978) algorithm BB (both shapes > 1, the first the smaller).
    Entries with ``n = 0`` are accepted with an arbitrary value. Returns
    ``(y, accept)``, float of ``dtype`` and bool, both of ``n``'s shape.
    """
    (u1, u2), _ = uniform_and_bit(key, (2, *n.shape), dtype)
    a = ((n + 1) // 2).astype(dtype)
    b = (n // 2 + 1).astype(dtype)
    a_s, b_s = jnp.maximum(a, 2.0), jnp.maximum(b, 2.0)
    total = a_s + b_s
    beta = jnp.sqrt((total - 2.0) / (2.0 * a_s * b_s - total))
    gamma = a_s + 1.0 / beta
    v = beta * (jnp.log(u1) - jnp.log1p(-u1))
    w_minus_a = a_s * jnp.expm1(v)  # w = a e^v, kept relative to a against cancellation
    w = a_s + w_minus_a
    z = u1 * u1 * u2
    r = gamma * v - math.log(4.0)
    s = r - w_minus_a  # a + r - w
    log_z = jnp.log(z)
    accept = (
        (s + (1.0 + math.log(5.0)) >= 5.0 * z)
        | (s > log_z)
        | (r - total * jnp.log1p(w_minus_a / total) >= log_z)
    )
    y_cheng = (w - b_s) / (w + b_s)
    y_closed = jnp.where(n == 1, 2.0 * u1 - 1.0, 1.0 - 2.0 * jnp.sqrt(u1))
    small = n <= 2
    return jnp.where(small, y_closed, y_cheng), small | accept


def _exclusive_count(mask):
    """``sum(mask[..., :i])`` for each ``i`` along the last axis (int32).

    A two-level blocked cumsum (rows of ``_PREFIX_BLOCK``): XLA's CPU cumsum is
    superlinear in the length of the summed axis.
    """
    counts = mask.astype(jnp.int32)
    *lead, size = counts.shape
    width = min(size, _PREFIX_BLOCK)
    rows = -(-size // width)
    blocks = jnp.pad(counts, [(0, 0)] * len(lead) + [(0, rows * width - size)]).reshape(*lead, rows, width)
    within = jnp.cumsum(blocks, axis=-1)
    totals = within[..., -1]
    before = jnp.cumsum(totals, axis=-1) - totals
    return (within - blocks + before[..., None]).reshape(*lead, rows * width)[..., :size]


def _block_size(shape):
    """Length of the blocks that rejected proposals are redrawn within.

    The largest power of two up to ``_MAX_BLOCK`` dividing the size of one entry
    of the leading axis (the whole size for 1-D shapes), so that blocks never
    straddle examples: with a batch-sharded array every block stays on one device.
    """
    per_entry = math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)
    block = 1
    while block < _MAX_BLOCK and per_entry % (2 * block) == 0:
        block *= 2
    return block


def _redraw_all(key, n, y, done):
    """Redraws rejected entries over the whole array until all are accepted."""

    def body(state):
        key, y, done = state
        key, sub = jax.random.split(key)
        y_new, ok = _beta_proposal(sub, n, y.dtype)
        return key, jnp.where(done, y, y_new), done | ok

    _, y, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[2]), body, (key, y, done))
    return y


def _beta_frac(key, n, dtype):
    """Exact ``2B - 1``, ``B ~ Beta(ceil(n/2), floor(n/2) + 1)``, for counts ``n`` of
    shape ``(blocks, block)``.

    One proposal round covers the whole array. In each block, the rejections
    (about 10%) are queued by index and worked off through a buffer of
    ``block / _BUFFER_FRACTION`` slots: each round proposes for every buffered
    entry, writes the accepted ones and refills their slots from the queue, until
    every queue and buffer is empty. All indexing stays within a block (batched
    over blocks), so a batch-sharded array needs no cross-device traffic. Blocks
    too short for a buffer are redrawn whole instead. Every rejected entry keeps
    getting fresh, independent proposals until one is accepted, so the accepted
    values keep their exact law.
    """
    block = n.shape[1]
    buffer = block // _BUFFER_FRACTION
    key_first, key_loop = jax.random.split(key)
    y, accepted = _beta_proposal(key_first, n, dtype)
    if buffer < 1:
        return _redraw_all(key_loop, n, y, accepted)
    pending = ~accepted
    # Per block: indices of the rejected entries, in order, then the sentinel ``block``.
    write = jax.vmap(lambda y, i, v: y.at[i].set(v, mode="drop"))  # one block per row; i = block: dropped
    positions = jnp.broadcast_to(jnp.arange(block, dtype=jnp.int32), n.shape)
    slot_in_queue = jnp.where(pending, _exclusive_count(pending), block)
    queue = write(jnp.full(n.shape, block, jnp.int32), slot_in_queue, positions)

    def round_(state):
        key, y, slots, head = state
        key, sub = jax.random.split(key)
        # An empty slot (index ``block``) reads n = 0, whose proposal is always accepted.
        n_buf = jnp.take_along_axis(n, slots, axis=1, mode="fill", fill_value=0)
        y_buf, ok = _beta_proposal(sub, n_buf, dtype)
        y = write(y, jnp.where(ok, slots, block), y_buf)
        next_in_queue = head[:, None] + _exclusive_count(ok)
        refill = jnp.take_along_axis(queue, next_in_queue, axis=1, mode="fill", fill_value=block)
        return key, y, jnp.where(ok, refill, slots), head + jnp.sum(ok, axis=1, dtype=jnp.int32)

    state = (key_loop, y, queue[:, :buffer], jnp.full(n.shape[0], buffer, jnp.int32))
    _, y, _, _ = jax.lax.while_loop(lambda s: jnp.any(s[2] < block), round_, state)
    return y


def sample(key, t, shape, *, a, c):
    """Exact draws of K(t) by the Poisson-Beta construction.

    Given n ~ Poisson(a t) direction switches, the time spent moving in the initial
    direction, divided by t, is Beta(floor(n/2) + 1, ceil(n/2)); with n = 0 the
    draw sits on an atom ``+-c t``. The sampler draws the mirror image
    Beta(ceil(n/2), floor(n/2) + 1) (Cheng's algorithm wants the smaller shape
    first), which the independent symmetric sign makes equal in law. Cost: one
    random word per element for ``n`` and the sign (more only where ``a t > 40``),
    two per Beta proposal; the ~10% rejected proposals are redrawn through small
    buffers, within blocks of up to 1024 entries that never straddle two entries
    of the leading (batch) axis. Compiled once per ``shape``, dtype and shape of
    ``t``; a ``t`` of shape ``(B, 1, ...)`` (one time per example) is fastest.

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
    t = as_float(t)
    shape = tuple(shape)
    if t.ndim > len(shape) or jnp.broadcast_shapes(t.shape, shape) != shape:
        raise ValueError(f"t of shape {t.shape} does not broadcast to shape {shape}")
    return _sample(key, t, shape, a, c)


@functools.partial(jax.jit, static_argnums=2)
def _sample(key, t, shape, a, c):
    """:func:`sample` after argument checks, compiled once per shape and dtype."""
    dtype = float_dtype()
    t = t.reshape((1,) * (len(shape) - t.ndim) + t.shape)  # broadcast lazily
    k_count, k_chunks, k_beta = jax.random.split(key, 3)
    u, positive = uniform_and_bit(k_count, shape, dtype)
    n = poisson(k_chunks, u, as_float(a) * t)
    y = _beta_frac(k_beta, n.reshape(-1, _block_size(shape)), dtype).reshape(shape)
    on_atom = n == 0
    x = jnp.where(positive, 1.0, -1.0).astype(dtype) * as_float(c) * t * jnp.where(on_atom, 1.0, y)
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
    dtype = float_dtype()
    t = as_float(t)
    k_sign, k_exp = jax.random.split(key)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0).astype(dtype)
    gaps = jax.random.exponential(k_exp, (*shape, max_flips), dtype) / as_float(a)
    times = jnp.minimum(jnp.cumsum(gaps, axis=-1), t)
    starts = jnp.concatenate([jnp.zeros((*shape, 1), dtype), times[..., :-1]], axis=-1)
    direction = jnp.where(jnp.arange(max_flips) % 2 == 0, 1.0, -1.0).astype(dtype)
    before_last = jnp.sum(direction * (times - starts), axis=-1)
    last = (1.0 if max_flips % 2 == 0 else -1.0) * (t - times[..., -1])
    x = sign * as_float(c) * (before_last + last)
    flips = jnp.sum(jnp.cumsum(gaps, axis=-1) < t, axis=-1)
    v = sign * as_float(c) * jnp.where(flips % 2 == 0, 1.0, -1.0)
    return x, v, flips < max_flips


def atom_mass(t, *, a):
    """Total mass ``exp(-a t)`` of the two atoms at ``+-c t`` (half each)."""
    check_positive(a=a)
    return jnp.exp(-as_float(a) * as_float(t))


def variance(t, *, a, c):
    """``Var K(t) = (c^2 / a) [t - (1 - exp(-2 a t)) / (2 a)]``, stable for small a t."""
    check_positive(a=a, c=c)
    a, c, t = as_float(a), as_float(c), as_float(t)
    lam = a * t
    # phi(lam) = lam - (1 - exp(-2 lam)) / 2 = lam^2 sum_j 2 (-2 lam)^j / (j + 2)!.
    # The direct form loses ~eps lam / phi to cancellation; below lam = 1/4, sixteen
    # series terms are accurate to float64 precision instead.
    series = jnp.zeros_like(lam)
    for j in reversed(range(16)):
        series = series * lam + 2.0 * (-2.0) ** j / math.factorial(j + 2)
    series = lam * lam * series
    direct = lam + 0.5 * jnp.expm1(-2.0 * lam)
    phi = jnp.where(lam < 0.25, series, direct)
    return (c / a) ** 2 * phi


def density(x, t, *, a, c):
    """Density of the continuous part of the law of K(t) at x; 0 for |x| >= c t.

    ``p = (a / 2c) e^{-a t} [I0(z) + a t I1(z) / z]`` with ``z = a r / c``,
    ``r = sqrt(c^2 t^2 - x^2)``. Its integral over x is ``1 - exp(-a t)``.
    """
    check_positive(a=a, c=c)
    x, t = _broadcast(x, t)
    a_, c_ = as_float(a), as_float(c)
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
    lam = as_float(a) * t
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
    a_, c_ = as_float(a), as_float(c)
    _, gap, r = _cone(x, t, c)
    z = a_ * r / c_
    big = z > _SMALL_Z
    z_safe = jnp.where(big, z, 1.0)
    lag = jnp.where(big, (r / c_) * i0e(z_safe) / i1e(z_safe), (2.0 / a_) * (1.0 + z * z / 8.0))
    inner = x / (t + lag)
    atom = (gap <= 0) if on_atom is None else jnp.broadcast_to(on_atom, x.shape)
    return jnp.where(atom, c_ * jnp.sign(x), inner)
