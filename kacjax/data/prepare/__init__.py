"""``prepare``: the official files of an image dataset -> a TFDS array_record directory, offline.

The result is the layout ``tfds build NAME --file_format=array_record`` makes,
``<data_dir>/<tfds name>/<version>/``, written by TFDS's own writer through subclasses of TFDS's own
builders: the same features, label names, splits, example keys and order. Nothing downloads and
nothing needs TensorFlow. TFDS writes into ``incomplete.*`` and renames the folder when every
split is written, so an interrupted run leaves nothing that reads as prepared.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

from kacjax.data.prepare import celeb_a, cifar10, lsun
from kacjax.data.prepare.official import Log, SourceError
from kacjax.data.tfds_source import IMAGE_DATASETS

__all__ = ["DATASETS", "SourceError", "prepare", "prepared_dir"]

# config data.name -> the module reading its official files (its builder and the version it writes)
DATASETS = {"cifar10": cifar10, "celeb_a": celeb_a, "lsun/bedroom": lsun}


def prepared_dir(name: str, data_dir: str) -> str:
    """Where ``prepare(name, ..., data_dir)`` writes: ``<data_dir>/<tfds name>/<version>``."""
    return os.path.join(data_dir, IMAGE_DATASETS[name].tfds_name, DATASETS[name].VERSION)


def _check_writable(path: str) -> None:
    """Raises ``OSError`` unless a folder can be made where ``path`` will be (nothing is left behind)."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    tempfile.TemporaryDirectory(dir=path).cleanup()


def prepare(name: str, source_dir: str, data_dir: str, log: Log = print) -> str:
    """Prepares dataset ``name`` from the official files in ``source_dir``; returns the prepared folder.

    A folder already prepared is left as it is. Raises :class:`SourceError` (nothing written) for a
    missing or malformed source file, ``OSError`` for a ``data_dir`` that cannot be written; an error
    while writing leaves no prepared folder.
    """
    import tensorflow_datasets as tfds

    if name not in DATASETS:
        raise SourceError(f"unknown dataset {name!r}; kacjax-prepare knows {', '.join(DATASETS)}")
    target = prepared_dir(name, data_dir)
    if os.path.isfile(os.path.join(target, "dataset_info.json")):
        log(f"{name} is already prepared in {target}: nothing to do")
        return target
    if not os.path.isdir(source_dir):
        raise SourceError(f"source folder {source_dir} does not exist")
    _check_writable(target)
    for stale in glob.glob(os.path.join(os.path.dirname(target), f"incomplete.*_{os.path.basename(target)}")):
        log(f"removing {stale}, left by an interrupted preparation")
        shutil.rmtree(stale, ignore_errors=True)
    with DATASETS[name].builder(source_dir, data_dir, log) as builder:
        log(f"writing {target}")
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
        counts = ", ".join(f"{split} {info.num_examples}" for split, info in builder.info.splits.items())
    log(f"prepared {name} in {target}: {counts}")
    return target
