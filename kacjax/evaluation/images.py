"""Image helpers: [-1, 1] float images to uint8 grids and PNG files."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def to_uint8(images, xp=np):
    """``(N, H, W, C)`` floats in ``[-1, 1]`` (clipped) -> uint8 ``round((x + 1) * 127.5)``, as real
    images are stored; ``xp`` is ``numpy`` or ``jax.numpy`` (inside jit)."""
    images = xp.clip(xp.asarray(images, xp.float32), -1.0, 1.0)
    return xp.round((images + 1.0) * 127.5).astype(xp.uint8)


def grid(images, *, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tiles ``(N, H, W, C)`` uint8 images into one ``(rows*(H+pad)+pad, ...)`` uint8 image."""
    n, h, w, ch = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, ch), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return out


def save_png(path: str, images, *, cols: int | None = None, scale: int = 1) -> None:
    """Saves ``(N, H, W, C)`` images in ``[-1, 1]`` as one PNG grid, upscaled by ``scale``."""
    tiled = grid(to_uint8(images), cols=cols)
    if tiled.shape[-1] == 1:
        tiled = tiled[..., 0]
    img = Image.fromarray(tiled)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
