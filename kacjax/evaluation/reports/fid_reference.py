"""The FID reference statistics of the prepared data in use: computed once over its whole split, then
reused only for the same data (its identity, :mod:`kacjax.data.identity`, recorded in the file)."""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

import jax
import numpy as np

from kacjax.data import build_source
from kacjax.data.identity import describe, digest, identity
from kacjax.evaluation import images
from kacjax.evaluation.metrics import fid, inception
from kacjax.evaluation.reports.feature_stream import accumulate, process_slice
from kacjax.runtime import logs, parallel


@dataclasses.dataclass(frozen=True)
class ReferenceSettings:
    """Which data the statistics are of, where they live and how they are made, read from a config.

    Attributes:
      identity: the prepared data in use (:func:`kacjax.data.identity.identity`); statistics are
        used only when they record the same.
      path: ``evaluate.reference_stats``, or a cache file named by the dataset, split, protocol and
        12 hex digits of ``identity``.
      explicit: whether ``path`` is ``evaluate.reference_stats`` (a file of other data is refused).
      data: the ``data`` section (the dataset read, unshuffled and unflipped).
      batch_size, save_every, kid_features: ``evaluate``'s global batch, how often partial sums are
        saved (in batches), and how many features are kept for KID.
    """

    identity: dict
    path: str
    explicit: bool
    data: Any
    batch_size: int
    save_every: int
    kid_features: int

    @classmethod
    def from_config(cls, config) -> ReferenceSettings:
        """Reads the data's identity: raises FileNotFoundError (with how to prepare it) when the data is
        not prepared."""
        ev, d = config.evaluate, config.data
        ident = identity(d)
        path = os.path.expanduser(ev.reference_stats) if ev.reference_stats else _cache_path(ident)
        return cls(identity=ident, path=path, explicit=bool(ev.reference_stats), data=d,
                   batch_size=ev.batch_size, save_every=ev.save_every, kid_features=ev.kid_features)


def _cache_prefix(ident: dict) -> str:
    name = ident["tfds_name"].replace("/", "_")
    split = ident["split"].replace("/", "_").replace(":", "_")
    protocol = fid.PROTOCOL.replace("/", "_")
    return os.path.join(inception.cache_dir(), "fid_stats", f"{name}_{split}_{protocol}")


def _cache_path(ident: dict) -> str:
    return f"{_cache_prefix(ident)}_{digest(ident)}.npz"


def _mismatch(r: ReferenceSettings, recorded) -> str:
    return (f"{r.path} holds FID reference statistics of {describe(recorded)}, not of the data in use: "
            f"{describe(r.identity)}")


def check_reference(r: ReferenceSettings) -> None:
    """Raises ValueError when ``evaluate.reference_stats`` names a file of other data than the data in use
    (or of no recorded data: a file from before kacjax recorded it), or one made under another protocol."""
    if r.explicit and os.path.isfile(r.path):
        recorded = fid.load_statistics(r.path)[2].get("data")
        if recorded != r.identity:
            raise ValueError(f"bad config: evaluate.reference_stats: {_mismatch(r, recorded)}; point it at "
                             "statistics of this data, or a new path to make them there, or unset it")


def _reuse(r: ReferenceSettings):
    """``(mu, sigma, kid features, meta)`` of ``r.path`` when it holds statistics of ``r.identity``, else
    None; logs why they are computed."""
    if not os.path.isfile(r.path):
        others = [p for p in glob.glob(glob.escape(_cache_prefix(r.identity)) + "*.npz")
                  if p != r.path and not p.endswith((".partial.npz", ".tmp.npz"))]
        note = f"; {len(others)} cached file(s) of other data under that name are not used" if others else ""
        logs.info(f"FID reference statistics: none at {r.path} for {describe(r.identity)}{note}")
        return None
    mu, sigma, meta = fid.load_statistics(r.path)
    if meta.get("data") != r.identity:
        if r.explicit:  # check_reference refuses it before any work
            raise ValueError(f"bad config: evaluate.reference_stats: {_mismatch(r, meta.get('data'))}")
        logs.info(f"FID reference statistics: {_mismatch(r, meta.get('data'))}; computing them again")
        return None
    logs.info(f"FID reference statistics: {r.path}, of {describe(r.identity)}")
    with np.load(r.path) as stored:
        return mu, sigma, stored["kid_features"], meta


def reference_statistics(r: ReferenceSettings, mesh):
    """``(mu, sigma, kid features, meta)`` of the data in use: read from ``r.path`` when it holds
    statistics of ``r.identity``, else computed and written there.

    The whole split (unshuffled, unflipped), quantised back to uint8, sharded over all
    devices of ``mesh``; written by process 0.
    """
    reused = _reuse(r)
    if reused is not None:
        return reused
    source = build_source(r.data)
    n = source.num_examples
    logs.info(f"FID reference statistics of {n} images of {r.data.name} -> {r.path}")

    def produce(b):
        rows = process_slice(np.arange(b * r.batch_size, (b + 1) * r.batch_size))
        x, _ = source.read(np.minimum(rows, n - 1))
        return parallel.shard_batch(images.to_uint8(x), mesh), {}

    moments, kid, _ = accumulate(produce, n, r.batch_size, mesh=mesh, kid_features=r.kid_features,
                                 partial=f"{r.path}.{digest(r.identity)}.partial", save_every=r.save_every,
                                 label="reference")
    mu, sigma = moments.mean_cov()
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(os.path.abspath(r.path)), exist_ok=True)
        tmp = f"{r.path}.{os.getpid()}.tmp.npz"
        fid.save_statistics(tmp, mu, sigma, moments.count, data=r.identity, kid_features=kid)
        os.replace(tmp, r.path)  # atomic: a kill leaves no half-written file
    return mu, sigma, kid, {"count": moments.count, "data": r.identity}
