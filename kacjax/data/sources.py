"""In-memory and generated example sources behind :class:`kacjax.data.pipeline.Input`.

A source has ``shape`` (per-example shape), ``num_classes`` (int, or None when
unconditional) and ``num_examples`` (int, or None for an infinite generated stream).
Finite sources implement ``read(indices, flip)``; infinite ones ``generate(seed, step, n)``.
Both return ``(x, label)``: ``x`` float32 of shape ``(n, *shape)``, ``label`` int32 ``(n,)``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from kacjax.data import indexing, toy2d


class IndexedSource(Protocol):
    """A finite dataset with random access."""

    shape: tuple[int, ...]
    num_classes: int | None
    num_examples: int

    def read(self, indices: np.ndarray, flip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Examples ``indices`` (shape ``(n,)``) as ``(x (n, *shape) float32, label (n,) int32)``; the
        images (NHWC) of rows where ``flip`` (bool ``(n,)``) is set are mirrored left-right."""


class GeneratedSource(Protocol):
    """An infinite stream whose batch of a step is drawn from ``(seed, step)``."""

    shape: tuple[int, ...]
    num_classes: int | None
    num_examples: None

    def generate(self, seed: int, step: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` examples of ``step`` as ``(x (n, *shape) float32, label (n,) int32)``."""


class ArraySource:
    """An :class:`IndexedSource` over arrays held in memory."""

    def __init__(self, x: np.ndarray, label: np.ndarray, num_classes: int | None):
        """``x``: float32 ``(N, *shape)``; ``label``: int32 ``(N,)``."""
        if len(x) != len(label):
            raise ValueError(f"{len(x)} examples but {len(label)} labels")
        self._x, self._label = x, label
        self.shape = tuple(x.shape[1:])
        self.num_classes = num_classes
        self.num_examples = len(x)

    def read(self, indices: np.ndarray, flip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = self._x[indices]
        if flip is not None and flip.any():
            x[flip] = x[flip][:, :, ::-1]
        return x, self._label[indices]


class Toy2dSource:
    """A :class:`GeneratedSource` of :func:`kacjax.data.toy2d.sample_toy2d` points, label 0."""

    shape = (2,)
    num_classes = None
    num_examples = None

    def __init__(self, target: str, mode_std: float):
        toy2d.check_args(target, mode_std)
        self._target, self._mode_std = target, mode_std

    def generate(self, seed: int, step: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = indexing.rng(seed, indexing.TOY2D_STREAM, step)
        return toy2d.sample_toy2d(self._target, rng, n, self._mode_std), np.zeros(n, np.int32)
