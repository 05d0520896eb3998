"""Distances between point sets and between Gaussians, and mode coverage.

Everything here is NumPy in float64, takes NumPy or JAX arrays and is pure (randomness
comes from an explicit ``seed``). A point set is an array of shape ``(n, d)``.
"""

from __future__ import annotations

import numpy as np


def _points(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {x.shape}")
    return x


def _mean_distance(a: np.ndarray, b: np.ndarray, *, same: bool, block: int = 1024) -> float:
    """Mean Euclidean distance over pairs (a_i, b_j), blockwise to bound memory.

    With ``same=True`` (``a is b``) the diagonal pairs i == j are left out of the mean.
    """
    total = 0.0
    for start in range(0, len(a), block):
        chunk = a[start:start + block]
        sq = (np.sum(chunk**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2.0 * chunk @ b.T)
        total += np.sqrt(np.maximum(sq, 0.0)).sum()  # the diagonal is ~0 and adds nothing
    pairs = len(a) * (len(b) - 1) if same else len(a) * len(b)
    return total / pairs


def energy_distance(x, y) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` between two point sets.

    Args:
      x: samples of X, shape ``(n, d)``, ``n >= 2``.
      y: samples of Y, shape ``(m, d)``, ``m >= 2``.

    Returns:
      The unbiased (U-statistic) estimate: the within-set means leave out the pairs of a point
      with itself. It is zero in expectation when X and Y have the same law, so it can come out
      slightly negative; it is the squared energy distance of Szekely & Rizzo (no square root).
    """
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"need (n>=2, d) and (m>=2, d) point sets, got {x.shape} and {y.shape}")
    centre = np.concatenate([x, y]).mean(axis=0)  # distances are shift-invariant; less rounding
    x, y = x - centre, y - centre
    return (2.0 * _mean_distance(x, y, same=False)
            - _mean_distance(x, x, same=True) - _mean_distance(y, y, same=True))


def sliced_wasserstein(x, y, *, num_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance ``(E_theta W2^2(theta.X, theta.Y))^(1/2)``.

    ``theta`` is uniform on the unit sphere (``num_projections`` random directions, drawn from
    ``seed``). Each 1-D W2 is computed exactly between the two empirical distributions: their
    quantile functions are step functions, so ``int_0^1 (F_x^-1(u) - F_y^-1(u))^2 du`` is a sum
    over the merged steps ``{i/n} U {j/m}``. With ``n == m`` this is the mean squared difference
    of the sorted projections.

    For isotropic shifts, ``X ~ N(0, I_d)`` and ``Y ~ N(mu, I_d)``, the value is ``|mu| / sqrt(d)``
    (``E (mu.theta)^2 = |mu|^2 / d``).

    Args:
      x: shape ``(n, d)``.
      y: shape ``(m, d)``.
      num_projections: number of random directions.
      seed: seed of the directions.

    Returns:
      The sliced W2 distance (a float, same units as the points).
    """
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x.shape} vs {y.shape}")
    theta = np.random.default_rng(seed).normal(size=(x.shape[1], num_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    xs, ys = np.sort(x @ theta, axis=0), np.sort(y @ theta, axis=0)  # (n, P), (m, P)
    n, m = len(x), len(y)
    levels = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)  # step edges in [0, 1]
    mid, width = (levels[1:] + levels[:-1]) / 2, np.diff(levels)
    diff = xs[(mid * n).astype(int)] - ys[(mid * m).astype(int)]  # (steps, P)
    return float(np.sqrt(np.mean(width @ diff**2)))


def mode_coverage(samples, modes, *, radius: float, min_count: int = 1) -> dict:
    """How well samples cover a known set of modes (e.g. a mixture of Gaussians).

    Each sample is assigned to its nearest mode and counts as a hit for it when it lies within
    ``radius`` of that mode.

    Args:
      samples: shape ``(n, d)``.
      modes: mode centres, shape ``(k, d)``.
      radius: hit radius (Euclidean).
      min_count: hits a mode needs to count as covered.

    Returns:
      ``{"coverage": fraction of modes with >= min_count hits,
         "high_quality_fraction": fraction of samples within radius of some mode,
         "counts": int array (k,) of hits per mode}``.
    """
    samples, modes = _points(samples, "samples"), _points(modes, "modes")
    dist = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=-1)  # (n, k)
    nearest = np.argmin(dist, axis=1)
    hit = dist[np.arange(len(samples)), nearest] <= radius
    counts = np.bincount(nearest[hit], minlength=len(modes))
    return {"coverage": float(np.mean(counts >= min_count)),
            "high_quality_fraction": float(np.mean(hit)),
            "counts": counts}


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` (ddof=1, float64) of features of shape ``(n, d)``."""
    features = _points(features, "features")
    if len(features) < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], -1)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative eigenvalues -> 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(s1) + tr(s2) - 2 tr((s1^1/2 s2 s1^1/2)^1/2)``, in float64 with
    symmetric eigendecompositions only (no ``sqrtm`` of a non-symmetric product, so no complex
    parts or NaNs for singular covariances).

    Args:
      mu1, mu2: means, shape ``(d,)``.
      sigma1, sigma2: covariances, shape ``(d, d)``.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _psd_sqrt(s1)
    cross = np.linalg.eigvalsh(root1 @ ((s2 + s2.T) / 2) @ root1)
    trace_sqrt = np.sqrt(np.clip(cross, 0.0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
