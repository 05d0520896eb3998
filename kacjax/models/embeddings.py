"""Shared embedding layers."""

import math

import flax.linen as nn
import jax.numpy as jnp

# w is multiplied by this before its sinusoidal embedding: weights of a few units then span
# the frequencies that t * 1000 spans for t in [0, 1].
W_EMBED_SCALE = 100.0


def timestep_embedding(t, dim: int, max_period: float = 10000.0):
    """Sinusoidal embedding of (scaled) times: t ``(B,)`` -> ``(B, dim)`` float32."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class GuidanceEmbedding(nn.Module):
    """The embedding of a guidance weight ``w`` ``(B,)`` -> ``(B, dim)``, added to the time embedding.

    Sinusoidal features of ``w * W_EMBED_SCALE``, a SiLU MLP, and a zero-initialised last
    layer: a fresh embedding adds 0, so a student made from a fixed-``w`` teacher starts
    as that teacher at every ``w``.
    """

    dim: int
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, w):
        h = nn.Dense(self.dim, dtype=self.dtype, name="dense_0")(timestep_embedding(w * W_EMBED_SCALE, self.dim))
        return nn.Dense(self.dim, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="dense_1")(nn.silu(h))


def check_conditioning(module: str, num_classes, y, w_embedding: bool, w, w_head: bool = False) -> None:
    """Raises ValueError when labels ``y`` or a guidance weight ``w`` are given to a model
    that does not take them, or missing for one that does (``w_head`` needs ``w_embedding``)."""
    if w_head and not w_embedding:
        raise ValueError(f"the {module}'s w_head scales an output by w: it needs w_embedding=True")
    if num_classes is None and y is not None:
        raise ValueError(f"y was given but the {module} is unconditional (num_classes=None)")
    if num_classes is not None and y is None:
        raise ValueError(f"the {module} is class-conditional (num_classes={num_classes}): pass labels "
                         f"y in [0, {num_classes}], with {num_classes} as the NULL label")
    if w_embedding and w is None:
        raise ValueError(f"the {module} is guidance-conditioned (w_embedding=True): pass w, shape (B,)")
    if not w_embedding and w is not None:
        raise ValueError(f"w was given but the {module} takes no guidance weight (w_embedding=False)")
