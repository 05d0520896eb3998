"""The identity of the prepared image data a config reads: which dataset, split and content, in a few MiB.

What FID reference statistics are tied to (docs/evaluation.md): a small JSON-able dict

  ``dataset``       the config's dataset name (``'cifar10'``, ``'celeb_a'``, ``'lsun/bedroom'``)
  ``tfds_name``     the prepared builder read (``data.tfds_name``, default the dataset's own)
  ``version``       the version directory read, ``<data_dir>/<tfds_name>/<X.Y.Z>`` (the highest)
  ``split``         the split string (``'train'``, ``'train[:90%]'``)
  ``image_size``    the side of the images read (pixels)
  ``num_examples``  examples of the split
  ``fingerprint``   sha256 (hex) over, for every array_record shard of the version directory (all
                    splits, sorted by name): its name, its size in bytes and its first and last MiB
                    (the first records, and the index of record offsets that array_record keeps at
                    the end of a file); then every split's name and shard lengths from
                    ``dataset_info.json``.

Two preparations with different images, counts, shards or versions differ; so do two splits. A copy
of the same prepared directory elsewhere is the same data: ``data_dir`` itself is not part of it.
Not covered: a change only inside a shard's middle that keeps every record's length (the index),
and changes to the reading code (crops, resizes). Cost: two reads of 1 MiB per shard (CIFAR-10: 2
shards; LSUN bedroom, 43 GB: about 512 shards, 1 GiB), once per process for unchanged files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from kacjax.data.build import IMAGE_NAMES, check_data_config

EDGE_BYTES = 1 << 20  # bytes hashed at each end of a shard


def _shard_signature(version_dir: pathlib.Path) -> tuple:
    """``((name, size, mtime_ns), ...)`` of the array_record shards and of dataset_info.json."""
    names = sorted(p.name for p in version_dir.iterdir() if ".array_record-" in p.name and p.is_file())
    names.append("dataset_info.json")
    return tuple((name, st.st_size, st.st_mtime_ns) for name, st in
                 ((name, (version_dir / name).stat()) for name in names))


@functools.lru_cache(maxsize=32)
def _fingerprint(version_dir: str, signature: tuple) -> str:
    """The content fingerprint (see the module docstring) of ``version_dir``; ``signature`` keys the cache."""
    digest = hashlib.sha256()
    for name, size, _ in signature[:-1]:
        digest.update(f"{name}\0{size}\0".encode())
        with open(os.path.join(version_dir, name), "rb") as f:
            digest.update(f.read(EDGE_BYTES))
            if size > EDGE_BYTES:
                f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
                digest.update(f.read())
    with open(os.path.join(version_dir, "dataset_info.json")) as f:
        splits = json.load(f).get("splits", [])
    lengths = sorted((s.get("name", ""), [int(n) for n in s.get("shardLengths", [])]) for s in splits)
    digest.update(json.dumps(lengths).encode())
    return digest.hexdigest()


def identity(data_cfg: Mapping[str, Any]) -> dict:
    """The identity (see the module docstring) of the prepared data ``data_cfg`` names.

    Raises ValueError for a dataset that is not a prepared image dataset or a split it lacks, and
    the reader's FileNotFoundError (with the preparation instructions) when it is not prepared.
    """
    options = check_data_config(data_cfg)
    name = data_cfg["name"]
    if name not in IMAGE_NAMES:
        raise ValueError(f"dataset {name!r} is not read from prepared files: only {IMAGE_NAMES} have an "
                         "identity")
    import tensorflow_datasets as tfds  # ~1 s to import

    from kacjax.data import tfds_source

    dataset = tfds_source.IMAGE_DATASETS[name]
    tfds_name = options["tfds_name"] or dataset.tfds_name
    data_dir = options["data_dir"]
    data_dir = pathlib.Path(data_dir).expanduser() if data_dir else tfds_source.default_data_dir()
    version_dir = tfds_source.find_prepared(data_dir, tfds_name)
    split = str(options["split"])
    num_examples = tfds.builder_from_directory(str(version_dir)).info.splits[split].num_examples
    return {"dataset": name, "tfds_name": tfds_name, "version": version_dir.name, "split": split,
            "image_size": int(options["image_size"] or dataset.image_size), "num_examples": int(num_examples),
            "fingerprint": _fingerprint(str(version_dir), _shard_signature(version_dir))}


def digest(ident: Mapping[str, Any]) -> str:
    """12 hex digits naming ``ident`` (sha256 of its sorted JSON): what cache file names carry."""
    return hashlib.sha256(json.dumps(dict(ident), sort_keys=True).encode()).hexdigest()[:12]


def describe(ident: Mapping[str, Any] | None) -> str:
    """``ident`` in one line for messages, e.g. ``cifar10 3.0.2 split 'train' (50000 examples, 32 px,
    content 1f2e3d4c5b6a)``; None (a file from before kacjax recorded its data) as unrecorded data."""
    if not ident:
        return "unrecorded data (a file from before kacjax recorded it)"
    return (f"{ident.get('tfds_name')} {ident.get('version')} split {ident.get('split')!r} "
            f"({ident.get('num_examples')} examples, {ident.get('image_size')} px, "
            f"content {str(ident.get('fingerprint'))[:12]})")
