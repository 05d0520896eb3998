"""scikit-learn's 8x8 digits (1,797 labelled images, shipped inside the wheel).

Splits: ``'all'`` (1,797), or a fixed 90/10 split of one seed-0 permutation:
``'train'`` (the first 1,617 of it) and ``'test'`` (the other 180).
"""

from __future__ import annotations

import numpy as np
from sklearn import datasets

SPLITS = ("all", "train", "test")
NUM_CLASSES = 10
_TRAIN_FRACTION = 0.9
_MAX_PIXEL = 16.0


def load_digits(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(x, label)``: x float32 ``(n, 8, 8, 1)`` in ``[-1, 1]``, label int32 ``(n,)``."""
    if split not in SPLITS:
        raise ValueError(f"digits split must be one of {SPLITS}, got {split!r}")
    digits = datasets.load_digits()
    x = (digits.images / (_MAX_PIXEL / 2) - 1.0).astype(np.float32)[..., None]
    label = digits.target.astype(np.int32)
    if split != "all":
        order = np.random.default_rng(0).permutation(len(x))
        n_train = int(_TRAIN_FRACTION * len(x))
        keep = order[:n_train] if split == "train" else order[n_train:]
        x, label = x[keep], label[keep]
    return x, label
