"""CIFAR-10 from ``cifar-10-binary.tar.gz`` (what TFDS reads) or ``cifar-10-python.tar.gz``.

Binary version: ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin``, records of one label
byte and 3072 pixel bytes (the red, green, blue 32x32 planes), and ``batches.meta.txt`` (the label
names). Python version: ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``, Python 2
pickles of dicts holding a ``(n, 3072)`` uint8 array and a label list. They are read by an
unpickler that resolves only the names an array needs, to inert stand-ins: no pickled code runs.
Both hold the same images in the same order. Each image is written as PNG (PIL, lossless), where
TFDS encodes with TensorFlow: the pixels are the same, the bytes may differ.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import tarfile

import numpy as np
import PIL.Image
from tensorflow_datasets.image_classification import cifar

from kacjax.data.prepare.official import Log, SourceError, report_checksum, require

VERSION = str(cifar.Cifar10.VERSION)  # the version TFDS's builder writes
_RECORD = 1 + 3072
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _Array:
    """Stand-in for a pickled ``numpy.ndarray``: keeps the shape, dtype name and raw bytes."""

    def __init__(self, *args):
        del args

    def __setstate__(self, state):
        _, self.shape, self.dtype, _, self.raw = state


class _Dtype:
    """Stand-in for a pickled ``numpy.dtype``: keeps its name (``'u1'``)."""

    def __init__(self, name, *args):
        del args
        self.name = name.decode() if isinstance(name, bytes) else name

    def __setstate__(self, state):
        del state


def _marker(*args):
    del args


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy", "ndarray"): _marker,
    ("numpy", "dtype"): _Dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise SourceError(
            f"refusing to read a CIFAR pickle that asks for {module}.{name}: not the official format"
        )


def _unpickle(raw: bytes, member: str) -> dict:
    try:
        return _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except SourceError:
        raise
    except Exception as err:  # a damaged pickle raises anything from EOFError to UnpicklingError
        raise SourceError(f"{member} is not a readable CIFAR pickle ({err})") from None


def _from_pickle(batch: dict, member: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if (
        not isinstance(data, _Array)
        or data.dtype.name != "u1"
        or len(data.shape) != 2
        or data.shape[1] != 3072
    ):
        raise SourceError(f"{member} holds no (n, 3072) uint8 'data' array")
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        raise SourceError(f"{member}: 'labels' does not have one label per image")
    pixels = np.frombuffer(data.raw, np.uint8)
    if pixels.size != data.shape[0] * 3072:
        raise SourceError(f"{member}: 'data' holds {pixels.size} bytes, not {data.shape[0] * 3072}")
    return np.asarray(labels, np.int64), pixels.reshape(-1, 3072)


def _from_binary(raw: bytes, member: str) -> tuple[np.ndarray, np.ndarray]:
    if not raw or len(raw) % _RECORD:
        raise SourceError(
            f"{member} has {len(raw)} bytes, not a multiple of {_RECORD} (label + 32x32x3 pixels)"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, _RECORD)
    return records[:, 0].astype(np.int64), records[:, 1:]


def read(path: str) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``(label names, {split: (labels (n,) int64, images (n, 32, 32, 3) uint8)})`` from either archive.

    Raises :class:`SourceError` for an archive that is not one of the two official formats.
    """
    binary = path.endswith("cifar-10-binary.tar.gz")
    folder = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
    members = {
        f"{folder}/{b}.bin" if binary else f"{folder}/{b}" for batches in _BATCHES.values() for b in batches
    }
    meta_member = f"{folder}/batches.meta.txt" if binary else f"{folder}/batches.meta"
    raw = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for info in archive:
                if info.isfile() and info.name in members | {meta_member}:
                    raw[info.name] = archive.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise SourceError(f"{path} is not a readable .tar.gz ({err})") from None
    missing = sorted((members | {meta_member}) - raw.keys())
    if missing:
        raise SourceError(f"{path} lacks {', '.join(missing)}")
    if binary:
        names = [n for n in raw[meta_member].decode("ascii", "replace").split("\n") if n.strip()]
    else:
        names = _unpickle(raw[meta_member], meta_member).get(b"label_names")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names or []]
    if len(names) != 10:
        raise SourceError(f"{meta_member} names {len(names)} classes, not 10")
    splits = {}
    for split, batches in _BATCHES.items():
        parts = []
        for b in batches:
            member = f"{folder}/{b}.bin" if binary else f"{folder}/{b}"
            parts.append(
                _from_binary(raw[member], member)
                if binary
                else _from_pickle(_unpickle(raw[member], member), member)
            )
        labels = np.concatenate([p[0] for p in parts])
        if labels.min() < 0 or labels.max() > 9:
            raise SourceError(f"{path}: labels outside 0..9 in the {split} batches")
        images = np.concatenate([p[1] for p in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        splits[split] = (labels, images)
    return names, splits


class Builder(cifar.Cifar10, skip_registration=True):
    """TFDS's CIFAR-10 builder (same info, features, keys and ids) fed from a local archive."""

    name = cifar.Cifar10.name

    def __init__(self, *, label_names: list[str], splits: dict, **kwargs):
        self._label_names, self._splits = label_names, splits
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager
        self.info.features["label"].names = self._label_names
        return {split: self._generate_examples(f"{split}_", split) for split in self._splits}

    def _generate_examples(self, split_prefix, split):  # the keys and ids of TFDS's own builder
        labels, images = self._splits[split]
        for index, (label, image) in enumerate(zip(labels, images)):
            png = io.BytesIO()
            PIL.Image.fromarray(image).save(png, format="png")
            yield index, {"id": f"{split_prefix}{index:05d}", "image": png.getvalue(), "label": int(label)}


@contextlib.contextmanager
def builder(source_dir: str, data_dir: str, log: Log):
    """The builder of the archive found in ``source_dir``, checked and read (nothing written yet)."""
    path = require(source_dir, "cifar-10-binary.tar.gz", "cifar-10-python.tar.gz")
    report_checksum(path, log)
    names, splits = read(path)
    log(f"read {path}: " + ", ".join(f"{s} {len(v[0])} images" for s, v in splits.items()))
    yield Builder(label_names=names, splits=splits, data_dir=data_dir, file_format="array_record")
