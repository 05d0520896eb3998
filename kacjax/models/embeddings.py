"""Shared embedding layers."""

import math

import jax.numpy as jnp


def timestep_embedding(t, dim: int, max_period: float = 10000.0):
    """Sinusoidal embedding of (scaled) times: t ``(B,)`` -> ``(B, dim)`` float32."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb
