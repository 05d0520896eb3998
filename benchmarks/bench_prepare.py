"""kacjax-prepare's speed: fake official files of a given size, prepared, timed, extrapolated.

  python benchmarks/bench_prepare.py --dataset cifar10 --images 60000          # CIFAR-10's full size
  python benchmarks/bench_prepare.py --dataset celeb_a --images 20000
  python benchmarks/bench_prepare.py --dataset lsun/bedroom --images 10000

Writes the fake files of tests/official_fakes.py (exact official formats; CIFAR: random pixels;
CelebA 178x218 and LSUN 256..400 px JPEGs of gradients plus noise, quality 95) into a temporary
folder, runs ``kacjax.data.prepare.prepare`` on them and prints the seconds it took (the sha256
of every source file included), images/s, MB of source per image, and the time this rate gives
for the real dataset's image count. The CPU other processes used during the run is printed.
"""

import argparse
import os
import sys
import tempfile
import time

from timing import OtherCpu

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import official_fakes as fakes  # noqa: E402  (the fake official files the tests use)

from kacjax.data.prepare import prepare  # noqa: E402

REAL_IMAGES = {"cifar10": 60_000, "celeb_a": 202_599, "lsun/bedroom": 3_033_342}  # train + validation


def write(dataset: str, folder: str, images: int) -> None:
    if dataset == "cifar10":
        fakes.write_cifar_binary(folder, per_batch=images // 6)
    elif dataset == "celeb_a":
        fakes.write_celeba(folder, counts=(images * 8 // 10, images // 10, images - images * 9 // 10))
    else:
        fakes.write_lsun(folder, counts={"train": images - images // 100, "val": images // 100})


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=list(REAL_IMAGES), default="cifar10")
    p.add_argument("--images", type=int, default=6000)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        source, data_dir = os.path.join(scratch, "source"), os.path.join(scratch, "tfds")
        os.makedirs(source)
        start = time.perf_counter()
        write(args.dataset, source, args.images)
        made = time.perf_counter() - start
        megabytes = sum(os.path.getsize(os.path.join(source, f)) for f in os.listdir(source)) / 1e6
        with OtherCpu() as other:
            start = time.perf_counter()
            prepare(args.dataset, source, data_dir, log=lambda line: None)
            seconds = time.perf_counter() - start
    rate = args.images / seconds
    real = REAL_IMAGES[args.dataset]
    print(
        f"{args.dataset}: {args.images} fake images ({megabytes / args.images * 1e3:.1f} kB each, made in "
        f"{made:.0f} s) prepared in {seconds:.1f} s = {rate:.0f} images/s on {os.cpu_count()} cores; "
        f"{other.note()}"
    )
    print(f"at this rate the real {real:,} images take {real / rate / 60:.1f} min")


if __name__ == "__main__":
    main(sys.argv[1:])
