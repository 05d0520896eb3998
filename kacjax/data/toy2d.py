"""2-D toy target distributions with sharp modes (infinite data).

Targets:
  ``'gaussians9'``: equal mixture of 9 isotropic Gaussians centred on ``{-1, 0, 1}^2``,
    each with standard deviation ``mode_std``.
  ``'rings'``: two concentric circles of radii 0.5 and 1 (each picked with probability
    1/2), uniform in angle, with Gaussian radial noise of standard deviation ``mode_std``.
  ``'checkerboard'``: uniform on the 8 black cells of a 4x4 board over ``[-1, 1]^2``
    (cells of side 0.5; cell ``(i, j)`` is black when ``i + j`` is even); sharp edges,
    ``mode_std`` is not used.
"""

from __future__ import annotations

import numpy as np

TARGETS = ("gaussians9", "rings", "checkerboard")
BOARD_CELLS = 4  # cells per side of the checkerboard
RING_RADII = (0.5, 1.0)


def check_args(target: str, mode_std: float = 0.0) -> None:
    """Raises ``ValueError`` for an unknown target or a negative ``mode_std``."""
    if target not in TARGETS:
        raise ValueError(f"toy2d target must be one of {TARGETS}, got {target!r}")
    if mode_std < 0:
        raise ValueError(f"mode_std must be >= 0, got {mode_std}")


def toy2d_modes(target: str) -> np.ndarray:
    """Mode centres of ``target``, shape ``(k, 2)``, float32; only ``'gaussians9'`` has modes."""
    check_args(target)
    if target != "gaussians9":
        raise ValueError(f"toy2d target {target!r} has no discrete modes; only 'gaussians9' does")
    grid = np.array([-1.0, 0.0, 1.0], np.float32)
    return np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(9, 2)


def sample_toy2d(
    target: str, rng_or_seed: np.random.Generator | int, n: int, mode_std: float = 0.01
) -> np.ndarray:
    """Draws ``n`` points of ``target``, shape ``(n, 2)``, float32.

    Args:
      target: one of :data:`TARGETS`.
      rng_or_seed: a NumPy ``Generator`` (advanced in place) or an integer seed.
      n: number of points.
      mode_std: standard deviation of each mode (gaussians9) or of the radial noise
        (rings); unused by checkerboard.
    """
    check_args(target, mode_std)
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    if target == "gaussians9":
        centres = toy2d_modes(target)[rng.integers(0, 9, n)]
        points = centres + mode_std * rng.standard_normal((n, 2))
    elif target == "checkerboard":
        row = rng.integers(0, BOARD_CELLS, n)
        col = 2 * rng.integers(0, BOARD_CELLS // 2, n) + row % 2  # i + j even
        cell = 2.0 / BOARD_CELLS
        points = np.stack([row, col], axis=-1) * cell - 1.0 + cell * rng.random((n, 2))
    else:
        radius = np.asarray(RING_RADII)[rng.integers(0, len(RING_RADII), n)]
        radius = radius + mode_std * rng.standard_normal(n)
        angle = rng.uniform(0.0, 2.0 * np.pi, n)
        points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1)
    return points.astype(np.float32)
