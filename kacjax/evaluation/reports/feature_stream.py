"""Inception features of many images, embedded where they are generated and summed resumably.

Global batches of images sharded over every device of every process are embedded on the
devices; only features reach the host, where this process's moments accumulate in float64
(summed over processes at the end) and the first features are kept for KID. The partial sums
are saved every few batches, so a killed evaluation resumes where it stopped.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from kacjax.evaluation.metrics import fid
from kacjax.runtime import logs, parallel


def process_slice(global_rows: np.ndarray) -> np.ndarray:
    """This process's equal share of ``global_rows`` (a global batch's row indices or labels)."""
    per = len(global_rows) // jax.process_count()
    return global_rows[jax.process_index() * per:(jax.process_index() + 1) * per]


def _save_partial(path, state: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **state)
    os.replace(tmp, path)  # atomic: a kill leaves the previous partial sums


def accumulate(produce, num: int, batch_size: int, *, mesh, kid_features: int, partial: str, save_every: int,
               label: str):
    """Embeds ``ceil(num / batch_size)`` global batches ``produce(b)`` (sharded uint8 images) and
    returns ``(moments, kid features, extras)`` over all processes.

    ``produce(b)`` returns ``(images, extras)``: a dict of numbers that add up over batches
    and processes (timings, counts), except ``max_*`` keys, whose maximum is kept. This
    process's sums are saved to ``partial`` (one file per process) every ``save_every``
    batches and resumed from; the file is removed once the sums are complete.
    """
    suffix = f".p{jax.process_index()}of{jax.process_count()}" if jax.process_count() > 1 else ""
    partial = partial + suffix + ".npz"
    moments, kid, kid_index, extras, start = fid.Moments(), [], [], {}, 0
    if os.path.isfile(partial):
        with np.load(partial) as saved:
            start, moments.count = int(saved["batches"]), int(saved["count"])
            moments.total, moments.outer = saved["total"], saved["outer"]
            kid, kid_index = [saved["kid"]], [saved["kid_index"]]
            extras = {k[len("extra_"):]: saved[k] for k in saved.files if k.startswith("extra_")}
        logs.info(f"{label}: resuming at batch {start}")
    embed = fid.embedder(mesh)
    batches = -(-num // batch_size)
    for b in range(start, batches):
        images_b, extra = produce(b)
        rows, index = parallel.local_rows(embed(images_b))
        keep = index < num
        moments.add(rows[keep])
        kid.append(rows[keep & (index < kid_features)])
        kid_index.append(index[keep & (index < kid_features)])
        for k, v in extra.items():
            v = np.asarray(v, np.float64)
            extras[k] = v if k not in extras else (np.maximum if k.startswith("max_") else np.add)(extras[k], v)
        done = b + 1
        if done % save_every == 0 or done == batches:
            _save_partial(partial, dict(batches=done, count=moments.count, total=moments.total, outer=moments.outer,
                                        kid=np.concatenate(kid), kid_index=np.concatenate(kid_index),
                                        **{f"extra_{k}": v for k, v in extras.items()}))
            logs.info(f"{label}: {min(done * batch_size, num)}/{num} images")
    sums = {k: v for k, v in extras.items() if not k.startswith("max_")}
    summed = parallel.process_sum({"count": np.asarray(moments.count, np.int64), "total": moments.total,
                                   "outer": moments.outer, **sums})
    moments.count, moments.total, moments.outer = int(summed["count"]), summed["total"], summed["outer"]
    kid_all = parallel.gather_rows(np.concatenate(kid), np.concatenate(kid_index))  # global order, any layout
    maxes = {k: v for k, v in extras.items() if k.startswith("max_")}
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        maxes = {k: np.max(np.asarray(multihost_utils.process_allgather(np.float32(v)))) for k, v in maxes.items()}
    os.remove(partial)  # the caller keeps the result; a kill before that only redoes this row
    return moments, kid_all, {**{k: summed[k] for k in sums}, **maxes}
