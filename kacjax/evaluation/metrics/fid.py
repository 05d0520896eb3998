"""FID and KID with the standard FID Inception, offline (public name: :mod:`kacjax.fid`).

The protocol (``PROTOCOL``; docs/evaluation.md): images as uint8 (generated ones quantised
like real ones, :func:`kacjax.evaluation.images.to_uint8`: ``round((x + 1) * 127.5)``), TF1 bilinear resize to 299 without half-pixel
offset, ``(x - 128) / 128``, pool3 features of the TF "2015-12-05" Inception
(:mod:`kacjax.evaluation.metrics.inception`), Gaussian moments accumulated in float64, Frechet
distance; 50,000 samples against the training split by default. KID: unbiased MMD^2 with
the cubic polynomial kernel ``(x.y / d + 1)^3``, averaged over random subsets.
"""

from __future__ import annotations

import functools
import json
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from kacjax.evaluation.metrics import inception
from kacjax.evaluation.metrics.distances import frechet_distance
from kacjax.evaluation.metrics.torchscript import UnsafeWeightsError, read_torchscript
from kacjax.runtime import parallel

__all__ = ["PROTOCOL", "UnsafeWeightsError", "read_torchscript", "features", "embedder", "frechet_distance",
           "kernel_inception_distance", "Moments", "save_statistics", "load_statistics"]

PROTOCOL = "tf1-bilinear-299/uint8/pool3-2048/" + inception.WEIGHTS_SHA1[:12]


@functools.lru_cache(maxsize=None)
def _weights():
    return inception.split_weights(inception.load_weights())


# Images per Inception pass on one CPU device, whatever the global batch (benchmarks/bench_fid.py,
# docs/benchmarks.md): as fast per image as passes of 16 to 128, in under 1 GiB; a pass of 500 images
# held 18 GiB.
CPU_MICRO_BATCH = 8
# XLA:CPU's YNNPACK convolutions (jax 0.10) fault in fresh scratch memory on every call: half of the
# Inception's CPU time went to the kernel. Its own convolutions do not. Only the Inception, only on CPUs.
_CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def micro_batch(platform: str) -> Optional[int]:
    """Images per Inception pass on one device of ``platform`` (``'cpu'``, ``'gpu'``, ``'tpu'``):
    :data:`CPU_MICRO_BATCH` on CPUs, None (the device's whole share of the batch) elsewhere."""
    return CPU_MICRO_BATCH if platform == "cpu" else None


@functools.lru_cache(maxsize=None)
def _compiler_options(platform: str) -> Optional[dict]:
    """The Inception's XLA options on ``platform``: :data:`_CPU_COMPILER_OPTIONS` on a CPU whose XLA knows
    them (one without YNNPACK has nothing to turn off), else None."""
    if platform != "cpu":
        return None
    try:
        probe = jax.device_put(np.float32(0), jax.devices("cpu")[0])
        jax.jit(lambda x: x + 1, compiler_options=_CPU_COMPILER_OPTIONS).lower(probe).compile()
    except RuntimeError:  # "No such compile option" (JaxRuntimeError)
        return None
    return _CPU_COMPILER_OPTIONS


def in_micro_batches(fn, x, micro: Optional[int]):
    """``fn(x)`` for ``fn: (m, ...) -> (m, d)``, run on ``micro`` rows of ``x (n, ...)`` at a time
    (``lax.map``; the last pass zero-padded, its extra rows dropped); None: in one pass."""
    n = x.shape[0]
    if micro is None or micro >= n:
        return fn(x)
    pad = -n % micro
    padded = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    out = jax.lax.map(fn, padded.reshape(-1, micro, *x.shape[1:]))
    return out.reshape(-1, *out.shape[2:])[:n]


def embedder(mesh=None, micro: Optional[int] = None):
    """Jitted uint8 ``(B, H, W, C) -> (B, 2048)`` float32 pool3 features, the weights replicated on ``mesh``.

    Without a mesh, on the default device. A batch sharded over ``mesh``'s ``'data'`` axis (B
    divisible by its devices) is embedded where it lies: each device embeds its own rows, ``micro``
    at a time (default :func:`micro_batch` of the mesh's platform), and only features come back.
    """
    mesh = parallel.make_mesh(jax.devices()[:1]) if mesh is None else mesh
    platform = mesh.devices.flat[0].platform
    return _embedder(mesh, micro_batch(platform) if micro is None else micro, platform)


@functools.lru_cache(maxsize=None)
def _embedder(mesh, micro: Optional[int], platform: str):
    arrays, statics = _weights()
    weights = jax.device_put(arrays, parallel.replicated(mesh))

    def local(w, images):  # this device's rows
        return in_micro_batches(lambda x: inception.pool3(w, statics, inception.preprocess(x)), images, micro)

    rows = PartitionSpec(parallel.DATA_AXIS)
    apply = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), rows), out_specs=rows),
                    compiler_options=_compiler_options(platform))
    return functools.partial(apply, weights)


def features(images, *, batch_size: int = 50) -> np.ndarray:
    """Pool3 features ``(N, 2048)`` float32 of uint8 NHWC ``images`` of any size (C = 3, or 1).

    Batches of ``batch_size`` (the last one padded, so each image size compiles once).
    Raises FileNotFoundError with the install command when the weights are missing.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"features expects uint8 (N, H, W, 1 or 3) images, got {images.dtype} {images.shape}")
    embed = embedder()
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), np.uint8)])
        out.append(np.asarray(embed(padded))[: len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, inception.FEATURES), np.float32)


class Moments:
    """Running sums for the mean and covariance of features, in float64 (mergeable across shards)."""

    def __init__(self, dim: int = inception.FEATURES):
        self.count = 0
        self.total = np.zeros(dim, np.float64)
        self.outer = np.zeros((dim, dim), np.float64)

    def add(self, feats) -> None:
        """Adds ``(n, dim)`` features."""
        feats = np.asarray(feats, np.float64)
        self.count += len(feats)
        self.total += feats.sum(axis=0)
        self.outer += feats.T @ feats

    def mean_cov(self):
        """``(mu (dim,), sigma (dim, dim))`` with the unbiased (ddof = 1) covariance."""
        if self.count < 2:
            raise ValueError("need at least 2 feature vectors for a covariance")
        mu = self.total / self.count
        sigma = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return mu, sigma


def kernel_inception_distance(feats_a, feats_b, *, num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0):
    """KID: unbiased MMD^2 with kernel ``(x.y / d + 1)^3``, mean and std over random subsets.

    Each subset draws ``min(subset_size, len(a), len(b))`` rows of each set without
    replacement (``seed`` fixes them). Unbiased at any sample count, unlike FID.
    Returns ``(mean, std)``.
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (n, d) and (m, d) features, got {a.shape} and {b.shape}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 features in each set")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = ((p @ q.T / d + 1.0) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2.0 * k_xy.mean())
    return float(np.mean(values)), float(np.std(values))


def save_statistics(path: str, mu, sigma, count: int, *, data: Mapping, kid_features=None) -> None:
    """Writes reference statistics: ``mu``, ``sigma`` and, in ``meta``, the count, the protocol, the
    weights' checksum and ``data``, what they are statistics of (JSON-able; for a prepared dataset its
    :func:`kacjax.data.identity.identity`); optionally a subset of the features, for KID."""
    meta = {"protocol": PROTOCOL, "weights_sha1": inception.WEIGHTS_SHA1, "count": int(count),
            "data": dict(data)}
    extra = {} if kid_features is None else {"kid_features": np.asarray(kid_features, np.float32)}
    np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64),
             meta=np.asarray(json.dumps(meta)), **extra)


def load_statistics(path: str, *, min_count: Optional[int] = None):
    """``(mu, sigma, meta)`` of a statistics file; refuses one made under another protocol.

    ``meta['data']``: what they are statistics of (absent from files written before it was recorded).
    """
    with np.load(path) as stored:
        meta = json.loads(str(stored["meta"]))
        mu, sigma = stored["mu"], stored["sigma"]
    if meta.get("protocol") != PROTOCOL or meta.get("weights_sha1") != inception.WEIGHTS_SHA1:
        raise ValueError(f"{path} was made under protocol {meta.get('protocol')!r} with weights "
                         f"{meta.get('weights_sha1')!r}, not {PROTOCOL!r}: FIDs against it are not comparable; "
                         "remake it with kacjax --config CONFIG --workdir DIR --mode=fid_stats")
    if min_count is not None and meta["count"] < min_count:
        raise ValueError(f"{path} holds statistics of {meta['count']} images, fewer than {min_count}")
    return mu, sigma, meta
