"""A small MLP velocity field for low-dimensional data (the toy2d experiment)."""

from __future__ import annotations

from typing import Optional

import flax.linen as nn

from kacjax.models.embeddings import GuidanceEmbedding, check_conditioning, timestep_embedding


class VelocityMLP(nn.Module):
    """``u(x, t, y)``: x ``(B, ...)`` (flattened inside), t ``(B,)``, y ``(B,)`` or None -> x's shape.

    Attributes:
      hidden: width of the hidden layers.
      depth: number of hidden layers.
      time_scale: t is multiplied by this before the sinusoidal embedding.
      num_classes: None (unconditional) or the number of classes; index
        ``num_classes`` is the null label used for guidance.
      w_embedding: also take a guidance weight ``w`` ``(B,)`` (a guidance-conditioned student).
      w_head: with ``w_embedding``, a second zero-initialised output layer scaled by ``w``.
    """

    hidden: int = 256
    depth: int = 4
    time_scale: float = 1.0
    num_classes: Optional[int] = None
    w_embedding: bool = False
    w_head: bool = False

    def check_shape(self, shape) -> None:
        """Any example shape fits (examples are flattened)."""
        del shape

    @nn.compact
    def __call__(self, x, t, y=None, w=None, *, train: bool = False):
        del train  # no dropout
        check_conditioning("MLP", self.num_classes, y, self.w_embedding, w, self.w_head)
        emb = nn.Dense(self.hidden)(timestep_embedding(t * self.time_scale, self.hidden))
        if self.num_classes is not None:
            emb = emb + nn.Embed(self.num_classes + 1, self.hidden)(y)
        if self.w_embedding:
            emb = emb + GuidanceEmbedding(self.hidden, name="w_embed")(w)
        flat = x.reshape(x.shape[0], -1)
        h = nn.Dense(self.hidden)(flat)
        for _ in range(self.depth):
            h = nn.silu(h + emb)
            h = nn.Dense(self.hidden)(h)
        features = nn.silu(h)
        out = nn.Dense(flat.shape[-1], kernel_init=nn.initializers.zeros)(features)
        if self.w_head:
            out = out + w[:, None] * nn.Dense(flat.shape[-1], kernel_init=nn.initializers.zeros, name="w_out")(features)
        return out.reshape(x.shape)
