"""Data parallelism over every device of every process.

One 1-D mesh with axis ``'data'`` spans ``jax.devices()`` (all processes). Batches
are sharded on their leading axis, parameters and optimizer state are
replicated. Each process supplies only its own rows of the global batch.
"""

from __future__ import annotations

import os
import re
from typing import MutableMapping, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def size_cpu_thread_pools(environ: MutableMapping[str, str] = os.environ) -> Optional[int]:
    """Gives XLA:CPU two pool threads per fake device, unless ``PJRT_NPROC``/``NPROC`` is set.

    With ``--xla_force_host_platform_device_count=N`` in ``XLA_FLAGS``, XLA:CPU runs the
    N devices' work on pools of one thread per core by default. A device waiting in a
    collective holds a pool thread, so with more devices than cores the devices still
    on their way can be starved: a deadlock that XLA aborts after 40 s. Call this
    before JAX creates its CPU backend. Returns the pool size set, or None.
    """
    found = re.search(r"--xla_force_host_platform_device_count=(\d+)", environ.get("XLA_FLAGS", ""))
    if not found or int(found.group(1)) < 2 or "PJRT_NPROC" in environ or "NPROC" in environ:
        return None
    threads = max(2 * int(found.group(1)), os.cpu_count() or 1)
    environ["PJRT_NPROC"] = str(threads)
    return threads


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A ``('data',)`` mesh over ``devices`` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
    """Raises ValueError unless the global batch splits evenly over devices and processes."""
    devices, processes = mesh.devices.size, jax.process_count()
    if global_batch_size % devices or global_batch_size % processes:
        raise ValueError(
            f"global batch size {global_batch_size} must be divisible by the number of devices "
            f"({devices}) and of processes ({processes})"
        )


def shard_batch(local_batch, mesh: Mesh):
    """Builds global arrays sharded on ``'data'`` from this process's rows (a pytree of numpy)."""
    sharding = batch_sharded(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def to_host(tree):
    """Fetches a pytree of (replicated or fully addressable) arrays to numpy."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def local_rows(array) -> tuple:
    """This process's rows of a batch-sharded global array: ``(rows (n, ...) numpy, global row indices (n,))``.

    Shards that several devices hold (replicas) are taken once; rows come in global order.
    """
    pieces = {}
    for shard in array.addressable_shards:
        start = shard.index[0].start or 0
        pieces.setdefault(start, np.asarray(shard.data))
    if not pieces:
        return np.zeros((0, *array.shape[1:]), array.dtype), np.zeros((0,), np.int64)
    starts = sorted(pieces)
    rows = np.concatenate([pieces[s] for s in starts])
    index = np.concatenate([np.arange(s, s + len(pieces[s])) for s in starts])
    return rows, index


def process_sum(arrays: dict) -> dict:
    """Sums numpy arrays over all processes, exactly (float64 travels as raw bits); one process: as is."""
    if jax.process_count() == 1:
        return arrays
    from jax.experimental import multihost_utils

    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    raw = {k: np.ascontiguousarray(v).reshape(-1).view(np.uint32) for k, v in arrays.items()}
    gathered = multihost_utils.process_allgather(raw)  # (processes, words)
    return {k: np.ascontiguousarray(np.asarray(gathered[k])).view(v.dtype).reshape(-1, *v.shape).sum(axis=0)
            for k, v in arrays.items()}


def gather_rows(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Every process's ``rows`` ``(n_p, ...)`` with their global row ``index`` ``(n_p,)``, on every
    process: all rows once, in global order (counts may differ between processes)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        counts = np.asarray(multihost_utils.process_allgather(np.int32(len(rows)))).reshape(-1)
        width = int(counts.max())

        def pad(a):
            return np.concatenate([a, np.zeros((width - len(a), *a.shape[1:]), a.dtype)])

        every_rows = np.asarray(multihost_utils.process_allgather(pad(rows)))  # (processes, width, ...)
        every_index = np.asarray(multihost_utils.process_allgather(pad(index.astype(np.int32))))
        rows = np.concatenate([every_rows[p, :c] for p, c in enumerate(counts)])
        index = np.concatenate([every_index[p, :c] for p, c in enumerate(counts)])
    return rows[np.argsort(index, kind="stable")]
