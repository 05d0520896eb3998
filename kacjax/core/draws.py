"""Exact random draws and float helpers shared by the Kac process, random flights and line-Kac noise.

Uniforms with a free fair bit from one random word, Poisson counts by CDF inversion (exact for
any mean), Dekker's exact product, an underflow-free row norm, and the argument check of every
public function of :mod:`~kacjax.core.kac`, :mod:`~kacjax.core.flight` and :mod:`~kacjax.core.line`.
Pure ``jax.numpy``; float32 by default, float64 when ``jax_enable_x64`` is on.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp

# Poisson counts are drawn by inverting the CDF, for means above this as sums of
# counts with means up to this (exp(-chunk) stays a normal float32).
_POISSON_CHUNK = 40.0
# CDF terms per iteration of the Poisson inversion loop.
_POISSON_UNROLL = 4


def check_positive(**values) -> None:
    """Raises ValueError unless every plain-number argument is finite and > 0.

    Traced or array values are not checked (they cannot be inspected under jit).
    """
    for name, value in values.items():
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(value, numbers.Real) and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def float_dtype():
    """The default float dtype: float32, or float64 under ``jax_enable_x64``."""
    return jnp.result_type(float)


def as_float(v):
    """``v`` as an array of :func:`float_dtype`."""
    return jnp.asarray(v, float_dtype())


def two_prod(u, v):
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


def row_norm(x, keepdims=False):
    """``|x|`` over the last axis, scaled by the largest entry so that tiny positions (``c t`` of
    1e-30) do not underflow when squared."""
    scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    safe = jnp.where(scale > 0, scale, 1.0)
    norm = scale * jnp.sqrt(jnp.sum(jnp.square(x / safe), axis=-1, keepdims=True))
    return norm if keepdims else norm[..., 0]


def uniform_and_bit(key, shape, dtype):
    """Uniforms on the open interval (0, 1) and independent fair bits, one draw each.

    One random word per element: its top mantissa-width bits give ``u = (k + 1/2)
    2^-p`` (``p`` = 23 or 52; never 0 or 1, and ``1 - u`` is exact), its lowest bit
    the fair bit. Returns ``(u, bit)`` of ``shape`` (float of ``dtype``, bool).
    """
    nbits, mant = (32, 23) if dtype == jnp.float32 else (64, 52)
    word = jax.random.bits(key, shape, jnp.dtype(f"uint{nbits}"))
    k = (word >> (nbits - mant)).astype(dtype)
    return (k + 0.5) * (2.0**-mant), (word & 1) == 1


def _poisson_inversion(u, lam):
    """Poisson(lam) counts (int32, ``u``'s shape) by inverting the CDF at uniforms ``u``.

    ``lam <= _POISSON_CHUNK`` has ``u``'s rank and broadcasts to it; CDF terms are
    computed at ``lam``'s own shape (e.g. one per row when ``t`` is per example), so
    the loop over ``k``, shared by the batch, costs one fused compare-and-count pass
    over ``u`` per ``_POISSON_UNROLL`` terms. A draw whose ``u`` lies above the
    float-rounded total mass stops where the CDF stops growing, deep in the tail.
    """
    spread = tuple(i for i in range(u.ndim) if lam.shape[i] == 1 and u.shape[i] != 1)
    u_max = jnp.max(u, axis=spread, keepdims=True, initial=0.0)
    p = jnp.exp(-lam)
    n = (u >= p).astype(jnp.int32)

    def pending(state):
        _, _, p, cum = state
        return jnp.any((u_max >= cum) & (cum + p > cum))

    def body(state):
        k, n, p, cum = state
        for _ in range(_POISSON_UNROLL):
            k = k + 1
            p = p * (lam / k.astype(p.dtype))
            grown = cum + p
            n = n + ((u >= grown) & (grown > cum)).astype(n.dtype)
            cum = grown
        return k, n, p, cum

    _, n, _, _ = jax.lax.while_loop(pending, body, (jnp.zeros((), jnp.int32), n, p, p))
    return n


def poisson(key, u, lam):
    """Exact Poisson(lam) counts for any ``lam >= 0`` (broadcasting to ``u``'s shape).

    The first ``_POISSON_CHUNK`` of the mean is inverted at ``u``; larger means add
    independent Poisson counts for further chunks (fresh uniforms from ``key``), as
    Poisson(l1) + Poisson(l2) = Poisson(l1 + l2).
    """
    n = _poisson_inversion(u, jnp.minimum(lam, _POISSON_CHUNK))

    def body(state):
        key, rest, n = state
        key, sub = jax.random.split(key)
        u_more, _ = uniform_and_bit(sub, u.shape, u.dtype)
        return key, rest - _POISSON_CHUNK, n + _poisson_inversion(u_more, jnp.clip(rest, 0.0, _POISSON_CHUNK))

    _, _, n = jax.lax.while_loop(lambda s: jnp.any(s[1] > 0), body, (key, lam - _POISSON_CHUNK, n))
    return n
