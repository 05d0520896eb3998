"""ADM / DDPM++-style UNet: the velocity network ``u_theta(x_t, t, y)``.

Layout follows the ADM UNet (Dhariwal & Nichol, guided-diffusion ``UNetModel``):
a 3x3 input conv, an encoder of ``len(ch_mult)`` levels with ``num_res_blocks`` residual
blocks each (plus self-attention at the requested resolutions) and a downsampling step
between levels, a middle block (res block, attention, res block), a decoder of
``num_res_blocks + 1`` res blocks per level fed by the encoder's skip connections, and a
GroupNorm / SiLU / zero-initialised 3x3 conv output head. Time ``t`` (scaled by
``time_scale``) enters through a sinusoidal embedding and a 2-layer MLP; an optional class
embedding with a NULL label (for classifier-free guidance) is added to it.

Images are NHWC. Parameters are float32; the computation runs in ``dtype`` with GroupNorm
and the attention softmax kept in float32, and the output is returned in float32.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from kacjax.models.embeddings import GuidanceEmbedding, check_conditioning, timestep_embedding

_zeros = nn.initializers.zeros
# Kernels start from PyTorch's default U(+-1/sqrt(fan_in)), as in the PyTorch ADM code.
_torch_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
_Conv = functools.partial(nn.Conv, kernel_init=_torch_init)
_Dense = functools.partial(nn.Dense, kernel_init=_torch_init)
_MAX_GROUPS = 32  # GroupNorm groups: min(32, channels), as in ADM


def param_count(params) -> int:
    """Number of scalars in a parameter tree (arrays or ``jax.ShapeDtypeStruct`` leaves)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))


def _group_norm(x: jax.Array, name: str) -> jax.Array:
    """GroupNorm with ``min(32, C)`` groups, computed in float32, returned in ``x.dtype``.

    Must be called inside a compact method (it creates the submodule ``name``).
    """
    channels = x.shape[-1]
    groups = min(_MAX_GROUPS, channels)
    if channels % groups:
        raise ValueError(f"GroupNorm {name!r}: {channels} channels are not divisible by "
                         f"min({_MAX_GROUPS}, {channels}) = {groups} groups")
    norm = nn.GroupNorm(num_groups=groups, epsilon=1e-5, dtype=jnp.float32, name=name)
    return norm(x).astype(x.dtype)


def _resample(x: jax.Array, direction: str) -> jax.Array:
    """Parameter-free 2x resampling of ``(B, H, W, C)``: nearest ``"up"`` or average-pool ``"down"``."""
    if direction == "up":
        return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class ResBlock(nn.Module):
    """ADM residual block with time/class conditioning.

    ``x (B, H, W, C_in)``, ``emb (B, E)`` -> ``(B, H', W', out_channels)`` with ``H' = H``,
    ``H / 2`` (``resample="down"``) or ``2 H`` (``resample="up"``). The last conv is
    zero-initialised, so a fresh block is the identity (or the 1x1 skip projection).
    """

    out_channels: int
    dropout: float
    use_scale_shift_norm: bool
    resample: Optional[str] = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array, train: bool) -> jax.Array:
        conv = functools.partial(_Conv, self.out_channels, dtype=self.dtype)
        h = nn.silu(_group_norm(x, "norm_in"))
        if self.resample:
            h, x = _resample(h, self.resample), _resample(x, self.resample)
        h = conv((3, 3), padding=1, name="conv_in")(h)

        emb_width = 2 * self.out_channels if self.use_scale_shift_norm else self.out_channels
        emb_out = _Dense(emb_width, dtype=self.dtype, name="emb_proj")(nn.silu(emb))
        emb_out = emb_out[:, None, None, :]
        if self.use_scale_shift_norm:
            scale, shift = jnp.split(emb_out, 2, axis=-1)
            h = _group_norm(h, "norm_out") * (1 + scale) + shift
        else:
            h = _group_norm(h + emb_out, "norm_out")
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
        h = conv((3, 3), padding=1, kernel_init=_zeros, name="conv_out")(h)

        if x.shape[-1] != self.out_channels:
            x = conv((1, 1), name="skip")(x)
        return x + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions, with a residual connection.

    ``(B, H, W, C)`` -> ``(B, H, W, C)``; ``C`` must be divisible by ``num_heads``. The
    output projection is zero-initialised (identity at init), as in ADM.
    """

    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, height, width, channels = x.shape
        head_dim = channels // self.num_heads
        qkv = _Dense(3 * channels, dtype=self.dtype, name="qkv")(_group_norm(x, "norm"))
        qkv = qkv.reshape(batch, height * width, 3, self.num_heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
        weights = jax.nn.softmax(logits / math.sqrt(head_dim), axis=-1).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(x.shape)
        return x + _Dense(channels, dtype=self.dtype, kernel_init=_zeros, name="proj_out")(out)


class UNet(nn.Module):
    """Configurable ADM / DDPM++ UNet predicting a velocity field.

    Attributes:
      ch: base channel count; level ``l`` has ``ch * ch_mult[l]`` channels.
      ch_mult: channel multiplier per resolution level (level ``l`` is ``H / 2**l`` wide).
      num_res_blocks: res blocks per encoder level (the decoder has one more per level).
      attn_resolutions: spatial resolutions (e.g. ``16`` = 16x16 feature maps) whose levels
        get self-attention after every res block, in encoder and decoder; the middle block
        always has attention.
      num_heads: attention heads, used when ``num_head_channels <= 0``.
      num_head_channels: if positive, heads have this many channels
        (``heads = channels // num_head_channels``), overriding ``num_heads``.
      dropout: dropout rate inside res blocks (``'dropout'`` rng, only when ``train``).
      use_scale_shift_norm: condition res blocks by ``norm(h) * (1 + scale) + shift``
        (ADM) instead of adding the embedding before the norm (DDPM).
      resblock_updown: resample with res blocks (avg-pool / nearest inside the block)
        instead of a stride-2 conv / nearest-upsample-then-conv.
      time_scale: ``t`` is multiplied by this before the sinusoidal embedding.
      num_classes: ``None`` for an unconditional model; otherwise labels ``0..num_classes-1``
        plus the NULL label ``num_classes`` used for classifier-free guidance.
      w_embedding: take a guidance weight ``w`` as an input (a guidance-conditioned
        student): its embedding is added to the time embedding.
      w_head: with ``w_embedding``, a second zero-initialised output conv scaled by ``w``:
        ``u = conv_out(h) + w conv_w(h)``, the form of the guided velocity itself.
      out_channels: output channels (default: the input's).
      dtype: computation dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
    """

    ch: int = 128
    ch_mult: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: Sequence[int] = (16,)
    num_heads: int = 4
    num_head_channels: int = -1
    dropout: float = 0.1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    time_scale: float = 1.0
    num_classes: Optional[int] = None
    w_embedding: bool = False
    w_head: bool = False
    out_channels: Optional[int] = None
    dtype: Any = jnp.float32

    def _heads(self, channels: int) -> int:
        """Number of attention heads for a ``channels``-wide attention layer (validated)."""
        if self.num_head_channels > 0:
            if channels % self.num_head_channels:
                raise ValueError(
                    f"attention over {channels} channels: not divisible by "
                    f"num_head_channels={self.num_head_channels}"
                )
            return channels // self.num_head_channels
        if channels % self.num_heads:
            raise ValueError(
                f"attention over {channels} channels: not divisible by num_heads={self.num_heads}"
            )
        return self.num_heads

    def check_shape(self, shape: Sequence[int]) -> None:
        """Raises ValueError unless examples of ``shape`` ``(H, W, C)`` fit this UNet's fields: the
        resolutions, attention heads and GroupNorm widths, from the fields alone (no tracing)."""
        if len(shape) != 3:
            raise ValueError(f"UNet needs (height, width, channels) images, got examples of shape "
                             f"{tuple(shape)}")
        self._check(shape[0], shape[1])

    def _check(self, height: int, width: int) -> list[int]:
        """Validates the config against the input; returns the resolution of each level."""
        # num_res_blocks may be 0: the decoder still has one res block per level.
        lowest = {"ch": 1, "num_res_blocks": 0, "num_heads": 1,
                  **{f"ch_mult[{i}]": 1 for i in range(len(self.ch_mult))}}
        values = {"ch": self.ch, "num_res_blocks": self.num_res_blocks, "num_heads": self.num_heads,
                  **{f"ch_mult[{i}]": m for i, m in enumerate(self.ch_mult)}}
        if not self.ch_mult:
            raise ValueError("ch_mult must name at least one level, got ()")
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest[name]:
                raise ValueError(f"{name} must be an integer >= {lowest[name]}, got {value!r}")
        num_levels = len(self.ch_mult)
        if height != width:
            raise ValueError(f"UNet needs square inputs, got {height}x{width}")
        if height % 2 ** (num_levels - 1):
            raise ValueError(
                f"image size {height} is not divisible by 2**(len(ch_mult) - 1) = "
                f"{2 ** (num_levels - 1)} (ch_mult={tuple(self.ch_mult)})"
            )
        resolutions = [height // 2**level for level in range(num_levels)]
        missing = sorted(set(self.attn_resolutions) - set(resolutions))
        if missing:
            raise ValueError(
                f"attn_resolutions {missing} are not present for {height}x{width} inputs with "
                f"ch_mult={tuple(self.ch_mult)}; valid resolutions are {resolutions}"
            )
        for level, res in enumerate(resolutions):
            if res in self.attn_resolutions:
                self._heads(self.ch * self.ch_mult[level])
        self._heads(self.ch * self.ch_mult[-1])
        for path, channels in self.group_norm_widths(resolutions).items():
            groups = min(_MAX_GROUPS, channels)
            if channels % groups:
                raise ValueError(
                    f"GroupNorm {path}: {channels} channels are not divisible by min({_MAX_GROUPS}, "
                    f"{channels}) = {groups} groups; change model.ch ({self.ch}) or model.ch_mult "
                    f"({tuple(self.ch_mult)}) so that every level's ch * ch_mult[l] and every decoder "
                    f"block's input (the level below's output joined with an encoder skip) is at most "
                    f"{_MAX_GROUPS} channels or a multiple of {_MAX_GROUPS}"
                )
        return resolutions

    def group_norm_widths(self, resolutions: Sequence[int]) -> dict[str, int]:
        """The input channels of every GroupNorm, by parameter path (``'up_16x16_block2/norm_in'``),
        from the fields alone; ``resolutions``: each level's side (pixels), as :meth:`_check` returns."""
        widths, attn, last = {}, set(self.attn_resolutions), len(self.ch_mult) - 1

        def res_block(name: str, c_in: int, c_out: int) -> int:
            widths[f"{name}/norm_in"], widths[f"{name}/norm_out"] = c_in, c_out
            return c_out

        h, skips = self.ch, [self.ch]
        for level, res in enumerate(resolutions):
            channels, tag = self.ch * self.ch_mult[level], f"{res}x{res}"
            for i in range(self.num_res_blocks):
                h = res_block(f"down_{tag}_block{i}", h, channels)
                if res in attn:
                    widths[f"down_{tag}_attn{i}/norm"] = h
                skips.append(h)
            if level != last:
                h = res_block(f"down_{tag}_downsample", h, channels) if self.resblock_updown else channels
                skips.append(h)
        h = res_block("mid_block0", h, h)
        widths["mid_attn/norm"] = h
        h = res_block("mid_block1", h, h)
        for level, res in reversed(list(enumerate(resolutions))):
            channels, tag = self.ch * self.ch_mult[level], f"{res}x{res}"
            for i in range(self.num_res_blocks + 1):
                h = res_block(f"up_{tag}_block{i}", h + skips.pop(), channels)
                if res in attn:
                    widths[f"up_{tag}_attn{i}/norm"] = h
            if level != 0 and self.resblock_updown:
                h = res_block(f"up_{tag}_upsample", h, channels)
        widths["norm_out"] = h
        return widths

    @nn.compact
    def __call__(
        self, x: jax.Array, t: jax.Array, y: Optional[jax.Array] = None, w: Optional[jax.Array] = None, *,
        train: bool,
    ) -> jax.Array:
        """Velocity ``u(x, t, y)``, or ``u(x, t, y, w)`` with ``w_embedding``.

        Args:
          x: ``(B, H, W, C)`` images, ``H == W`` divisible by ``2**(len(ch_mult) - 1)``.
          t: ``(B,)`` times in ``[0, T]``.
          y: ``(B,)`` int labels in ``[0, num_classes]`` (``num_classes`` = NULL); required
            iff ``num_classes`` is set.
          w: ``(B,)`` guidance weights; required iff ``w_embedding``.
          train: enables dropout (needs the ``'dropout'`` rng).

        Returns:
          ``(B, H, W, out_channels or C)`` float32.
        """
        _, height, width, in_channels = x.shape
        check_conditioning("UNet", self.num_classes, y, self.w_embedding, w, self.w_head)
        resolutions = self._check(height, width)
        last = len(self.ch_mult) - 1
        block = functools.partial(
            ResBlock,
            dropout=self.dropout,
            use_scale_shift_norm=self.use_scale_shift_norm,
            dtype=self.dtype,
        )

        conv3x3 = functools.partial(_Conv, kernel_size=(3, 3), padding=1, dtype=self.dtype)

        def attention(channels: int, name: str) -> AttentionBlock:
            return AttentionBlock(self._heads(channels), dtype=self.dtype, name=name)

        emb_dim = 4 * self.ch
        emb = timestep_embedding(t * self.time_scale, self.ch)
        emb = _Dense(emb_dim, dtype=self.dtype, name="time_embed_0")(emb)
        emb = _Dense(emb_dim, dtype=self.dtype, name="time_embed_1")(nn.silu(emb))
        if self.num_classes is not None:
            label_embed = nn.Embed(self.num_classes + 1, emb_dim, dtype=self.dtype, name="label_embed")
            emb = emb + label_embed(y)
        if self.w_embedding:
            emb = emb + GuidanceEmbedding(emb_dim, dtype=self.dtype, name="w_embed")(w)

        h = conv3x3(self.ch, name="conv_in")(x.astype(self.dtype))
        skips = [h]
        for level, res in enumerate(resolutions):
            channels, tag = self.ch * self.ch_mult[level], f"{res}x{res}"
            for i in range(self.num_res_blocks):
                h = block(channels, name=f"down_{tag}_block{i}")(h, emb, train)
                if res in self.attn_resolutions:
                    h = attention(channels, f"down_{tag}_attn{i}")(h)
                skips.append(h)
            if level != last:
                if self.resblock_updown:
                    h = block(channels, resample="down", name=f"down_{tag}_downsample")(h, emb, train)
                else:
                    h = conv3x3(channels, strides=2, name=f"down_{tag}_downsample")(h)
                skips.append(h)

        channels = h.shape[-1]
        h = block(channels, name="mid_block0")(h, emb, train)
        h = attention(channels, "mid_attn")(h)
        h = block(channels, name="mid_block1")(h, emb, train)

        for level, res in reversed(list(enumerate(resolutions))):
            channels, tag = self.ch * self.ch_mult[level], f"{res}x{res}"
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = block(channels, name=f"up_{tag}_block{i}")(h, emb, train)
                if res in self.attn_resolutions:
                    h = attention(channels, f"up_{tag}_attn{i}")(h)
            if level != 0:
                if self.resblock_updown:
                    h = block(channels, resample="up", name=f"up_{tag}_upsample")(h, emb, train)
                else:
                    h = conv3x3(channels, name=f"up_{tag}_upsample")(_resample(h, "up"))

        h = nn.silu(_group_norm(h, "norm_out"))
        out = conv3x3(self.out_channels or in_channels, kernel_init=_zeros, name="conv_out")(h)
        if self.w_head:
            w_out = conv3x3(self.out_channels or in_channels, kernel_init=_zeros, name="w_out")(h)
            out = out + w.astype(out.dtype)[:, None, None, None] * w_out
        return out.astype(jnp.float32)
