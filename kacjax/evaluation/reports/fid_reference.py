"""The FID reference statistics of a dataset: computed once over its whole split, then cached."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np

from kacjax.data import build_source
from kacjax.evaluation import images
from kacjax.evaluation.metrics import fid, inception
from kacjax.evaluation.reports.feature_stream import accumulate, process_slice
from kacjax.runtime import logs, parallel


@dataclasses.dataclass(frozen=True)
class ReferenceSettings:
    """Where the statistics live and how they are made, read from a config.

    Attributes:
      path: ``evaluate.reference_stats``, or a cache file named by the dataset, split and protocol.
      data: the ``data`` section (the dataset read, unshuffled and unflipped).
      batch_size, save_every, kid_features: ``evaluate``'s global batch, how often partial sums are
        saved (in batches), and how many features are kept for KID.
    """

    path: str
    data: Any
    batch_size: int
    save_every: int
    kid_features: int

    @classmethod
    def from_config(cls, config) -> ReferenceSettings:
        ev, d = config.evaluate, config.data
        if ev.reference_stats:
            path = os.path.expanduser(ev.reference_stats)
        else:
            name = (d.get("tfds_name") or d.name).replace("/", "_")
            split = str(d.get("split") or "train").replace("/", "_").replace(":", "_")
            path = os.path.join(inception.cache_dir(), "fid_stats",
                                f"{name}_{split}_{fid.PROTOCOL.replace('/', '_')}.npz")
        return cls(path=path, data=d, batch_size=ev.batch_size, save_every=ev.save_every,
                   kid_features=ev.kid_features)


def reference_statistics(r: ReferenceSettings, mesh):
    """``(mu, sigma, kid features, meta)`` of the dataset, computed once and cached at ``r.path``.

    The whole split (unshuffled, unflipped), quantised back to uint8, sharded over all
    devices of ``mesh``; written by process 0.
    """
    if os.path.isfile(r.path):
        mu, sigma, meta = fid.load_statistics(r.path)
        with np.load(r.path) as stored:
            return mu, sigma, stored["kid_features"], meta
    source = build_source(r.data)
    n = source.num_examples
    logs.info(f"FID reference statistics of {n} images of {r.data.name} -> {r.path}")

    def produce(b):
        rows = process_slice(np.arange(b * r.batch_size, (b + 1) * r.batch_size))
        x, _ = source.read(np.minimum(rows, n - 1))
        return parallel.shard_batch(images.to_uint8(x), mesh), {}

    moments, kid, _ = accumulate(produce, n, r.batch_size, mesh=mesh, kid_features=r.kid_features,
                                 partial=r.path + ".partial", save_every=r.save_every, label="reference")
    mu, sigma = moments.mean_cov()
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(r.path), exist_ok=True)
        fid.save_statistics(r.path, mu, sigma, moments.count, source=f"{r.data.to_dict()}", kid_features=kid)
    return mu, sigma, kid, {"count": moments.count}
