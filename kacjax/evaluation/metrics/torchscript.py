"""Reading the arrays of a TorchScript file without torch and without running its pickle.

A TorchScript file (``torch.jit.save``) is a zip: ``<root>/data.pkl`` pickles the module
tree, whose tensors point to raw little-endian storages ``<root>/data/<key>``. Unpickling
``data.pkl`` naively would call whatever globals it names. :class:`_SafeUnpickler`
resolves only the few globals that rebuild tensors and module containers (inert
stand-ins: nothing is imported or called beyond numpy) and refuses every other one with
:class:`UnsafeWeightsError` before it can run.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeWeightsError(ValueError):
    """A weights file asked for a global that reading arrays does not need (it could run code)."""


class _Module:
    """Inert stand-in for a ``__torch__.*`` TorchScript class: holds the attributes it is given."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _StorageType:
    """Stand-in for ``torch.<Name>Storage``: only names the element dtype."""

    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, *extra):
    """``torch._utils._rebuild_tensor_v2`` on a numpy storage: a strided view, copied."""
    del requires_grad, hooks, extra
    itemsize = storage.dtype.itemsize
    if len(size) == 0:
        return storage[offset].copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _build_intlist(values):
    return list(values)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _build_intlist,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, root: str):
        super().__init__(file)
        self._archive, self._root, self._storages = archive, root, {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module.startswith("__torch__.") or module == "__torch__":
            return _Module  # a TorchScript class: an inert container, nothing imported
        raise UnsafeWeightsError(
            f"refusing to read: the weights file asks for the global {module}.{name}, which reading "
            "arrays does not need (unpickling it could run arbitrary code)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafeWeightsError(f"refusing to read: unexpected persistent id {pid!r}")
        _, storage_type, key, _, count = pid
        if key not in self._storages:
            raw = self._archive.read(f"{self._root}/data/{key}")
            self._storages[key] = np.frombuffer(raw, storage_type.dtype, count=count)
        return self._storages[key]


def _collect(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
    elif isinstance(obj, bool):
        return
    elif isinstance(obj, int):
        out[prefix] = np.asarray(obj, np.int64)
    elif isinstance(obj, list) and obj and all(isinstance(v, int) and not isinstance(v, bool) for v in obj):
        out[prefix] = np.asarray(obj, np.int64)
    elif isinstance(obj, _Module):
        for name, value in obj.__dict__.items():
            _collect(value, f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(obj, dict):
        for name, value in obj.items():
            _collect(value, f"{prefix}.{name}" if prefix else str(name), out)


def read_torchscript(path: str) -> dict:
    """The arrays of a TorchScript file: ``{'net.layers.conv.weight': float32 array, ...}``.

    Keys are attribute paths through the module tree; values are the tensors (numpy, their
    own dtype and shape) and the integer attributes (strides, paddings) as int64 arrays.
    Raises :class:`UnsafeWeightsError` for any global beyond the tensor-rebuild ones,
    ``ValueError`` for a file that is not a TorchScript archive.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a TorchScript file (not a zip archive)") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{path} is not a TorchScript file (no <root>/data.pkl)")
        root = pickles[0].split("/")[0]
        with archive.open(pickles[0]) as f:
            tree = _SafeUnpickler(f, archive, root).load()
    out: dict = {}
    _collect(tree, "", out)
    return out
