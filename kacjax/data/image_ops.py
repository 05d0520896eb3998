"""Image decoding and resizing (PIL), and the uint8 -> [-1, 1] float conversion.

All resizes use PIL's bilinear filter, which widens its support when shrinking, so a
downscale averages over the covered area (antialiased), like ``tf.image.resize(...,
antialias=True)`` in the usual score-SDE / DDPM preprocessing.
"""

from __future__ import annotations

import io

import numpy as np
import PIL.Image

CELEBA_CROP = 140  # side of the centre crop of the 218x178 (height x width) CelebA image


def decode_rgb(encoded: bytes) -> PIL.Image.Image:
    """Decodes PNG/JPEG bytes into an RGB image (grayscale or RGBA inputs are converted)."""
    return PIL.Image.open(io.BytesIO(encoded)).convert("RGB")


def centre_crop(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """The central ``size x size`` square; offsets ``(H - size) // 2``, ``(W - size) // 2``."""
    width, height = image.size
    if min(width, height) < size:
        raise ValueError(f"cannot centre-crop {size}x{size} from a {height}x{width} image")
    top, left = (height - size) // 2, (width - size) // 2
    return image.crop((left, top, left + size, top + size))


def resize_shorter_side(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """Rescales so the shorter side is ``size`` pixels (the longer one rounded), bilinear."""
    width, height = image.size
    ratio = size / min(width, height)
    new_size = (round(width * ratio), round(height * ratio))
    return image.resize(new_size, PIL.Image.Resampling.BILINEAR)


def celeba_crop_resize(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """CelebA: centre crop 140x140 of the 218x178 image (top 39, left 19), resize to ``size``."""
    return centre_crop(image, CELEBA_CROP).resize((size, size), PIL.Image.Resampling.BILINEAR)


def shorter_side_centre_crop(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """LSUN: resize the shorter side to ``size``, then centre crop ``size x size``."""
    return centre_crop(resize_shorter_side(image, size), size)


def unchanged(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """Native-resolution datasets (CIFAR-10): no resizing; the size was checked up front."""
    del size
    return image


def to_signed_unit(images: np.ndarray) -> np.ndarray:
    """uint8 pixels in ``[0, 255]`` -> float32 in ``[-1, 1]`` (``x / 127.5 - 1``), same shape."""
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
