"""Input pipeline throughput per process, next to the rate one accelerator consumes.

  python benchmarks/bench_input.py                     # the three image datasets, 1 and 2 threads
  python benchmarks/bench_input.py --datasets lsun/bedroom --threads 1 2 4 --images 512

For CIFAR-10, CelebA and LSUN Bedroom, a synthetic prepared TFDS dataset (array_record) of the
originals' stored format is written to a temporary directory: CIFAR-10 32x32 PNG, CelebA 218x178
JPEG at quality 95, LSUN JPEG at quality 75 with the shorter side 256 and the longer one varied
(mean about 341). The images are photo-like (smooth colour fields, hard-edged shapes, noise), as
encoded sizes and decode times depend on content; their mean encoded size is printed. Then, per
dataset and decoding-thread count:

* images/s of ``kacjax.data.build_input(...).batch(step)`` in this process (read, decode,
  crop/resize, flip, scale to [-1, 1]);
* the CPU time per image of the calling thread (record reads, stacking, scaling, flips: serial)
  and of the decoding threads (decode, crop/resize), from which the rate on ``--cores`` free cores
  is projected (Amdahl: ``1 / (serial + decoding / cores)``); CPU times are less disturbed than
  wall times by other work on a shared machine;
* one thread's CPU milliseconds per image to decode, and to crop/resize.

Beside them, what one accelerator consumes: XLA's FLOP count of the training step of the
dataset's UNet at its config's batch (compiled on this CPU, not run;
``bench_accelerator.step_flops``), per image, at ``--mfu`` of ``--peak-tflops``.
"""

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np
import PIL.Image
import PIL.ImageDraw
from bench_accelerator import step_flops, synthetic_input
from timing import OtherCpu

from kacjax.configs.defaults import load_config
from kacjax.data import build_input, image_ops
from kacjax.data.tfds_source import IMAGE_DATASETS
from kacjax.runtime import parallel
from kacjax.training import setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# dataset -> (encoding, JPEG quality, noise (grey levels), the experiment whose UNet and batch train on it).
# The noise brings the mean encoded size near the originals' (TFDS's prepared sizes over the images):
# CIFAR-10 about 2.3 KiB (2.2 here), CelebA about 7 KiB (9.5 here: smooth fields with hard edges
# compress less at quality 95 than faces), LSUN Bedroom about 14.8 KiB (14.0 here).
STORED = {"cifar10": ("png", None, 4.0, "experiments/cifar10.py"),
          "celeb_a": ("jpeg", 95, 0.5, "experiments/celeba64.py"),
          "lsun/bedroom": ("jpeg", 75, 9.0, "experiments/lsun_bedroom256.py")}


def image_size(dataset: str, rng) -> tuple:
    """``(height, width)`` of one stored image: fixed, or LSUN's shorter side 256, longer U[299, 384]."""
    stored = IMAGE_DATASETS[dataset].stored_shape
    if stored[0] is not None:
        return stored[:2]
    longer = int(rng.integers(299, 385))
    return (256, longer) if rng.random() < 0.85 else (longer, 256)  # mostly landscape


def photo_like(rng, height: int, width: int, noise: float) -> np.ndarray:
    """A uint8 ``(height, width, 3)`` image: smooth colour fields at two scales, a few hard-edged
    shapes, and Gaussian noise of standard deviation ``noise`` (grey levels)."""
    def field(rows, cols):
        coarse = PIL.Image.fromarray(rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8))
        return np.asarray(coarse.resize((width, height), PIL.Image.Resampling.BICUBIC), np.float32)

    image = PIL.Image.fromarray((0.7 * field(3, 4) + 0.3 * field(12, 16)).astype(np.uint8))
    draw = PIL.ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        (x0, x1), (y0, y1) = sorted(rng.integers(0, width, 2)), sorted(rng.integers(0, height, 2))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((int(x0), int(y0), int(x1), int(y1)), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pixels = np.asarray(image, np.float32) + rng.normal(0, noise, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def encoded_images(dataset: str, count: int, seed: int = 0) -> list:
    """``count`` photo-like images of ``dataset``'s stored sizes, encoded as it stores them (bytes)."""
    import io

    encoding, quality, noise, _ = STORED[dataset]
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        options = {"quality": quality} if quality else {}
        image = PIL.Image.fromarray(photo_like(rng, *image_size(dataset, rng), noise))
        image.save(buffer, format=encoding, **options)
        images.append(buffer.getvalue())
    return images


def prepare(data_dir: str, dataset: str, images: list) -> str:
    """Writes ``images`` (encoded bytes) as a prepared array_record TFDS dataset that ``dataset``'s
    reader accepts (``--config.data.tfds_name``); returns its name."""
    import tensorflow_datasets as tfds

    encoding = STORED[dataset][0]
    spec = IMAGE_DATASETS[dataset]
    features = {"image": tfds.features.Image(shape=spec.stored_shape, encoding_format=encoding)}
    if spec.conditional:
        features["label"] = tfds.features.ClassLabel(num_classes=10)

    class Synthetic(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            del dl_manager
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, encoded in enumerate(images):  # bytes are stored as they are
                yield i, {"image": encoded, **({"label": i % 10} if spec.conditional else {})}

    Synthetic.name = "kacjax_bench_" + dataset.replace("/", "_")
    Synthetic(data_dir=data_dir, file_format="array_record").download_and_prepare()
    return Synthetic.name


def pipeline_rate(dataset: str, data_dir: str, tfds_name: str, *, threads: int, batch: int, images: int):
    """``(images/s, calling thread's CPU s per image, decoding threads' CPU s per image, OtherCpu)`` of
    ``build_input(...).batch(step)`` over ``images`` images after one warm-up batch.

    The calling thread reads the records, stacks, scales and flips (serial); the ``threads`` decoding
    threads decode and crop/resize.
    """
    data_cfg = {"name": dataset, "data_dir": data_dir, "tfds_name": tfds_name, "num_threads": threads}
    data = build_input(data_cfg, global_batch_size=batch, seed=0)
    data.batch(0)
    steps = max(1, images // batch)
    with OtherCpu() as other:
        start, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
        for step in range(1, steps + 1):
            data.batch(step)
        wall, cpu, own = time.perf_counter() - start, time.process_time() - cpu, time.thread_time() - own
    n = steps * batch
    return n / wall, own / n, (cpu - own) / n, other


def per_image_ms(dataset: str, encoded: list) -> tuple:
    """``(decode, crop/resize)`` CPU milliseconds per image in one thread: the decoding threads' work."""
    spec = IMAGE_DATASETS[dataset]
    start = time.thread_time()
    decoded = [image_ops.decode_rgb(e) for e in encoded]
    middle = time.thread_time()
    for image in decoded:
        np.asarray(spec.preprocess(image, spec.image_size))
    end = time.thread_time()
    return 1e3 * (middle - start) / len(encoded), 1e3 * (end - middle) / len(encoded)


def flops_per_image(dataset: str) -> tuple:
    """``(training FLOPs per image, batch)`` of the dataset's UNet at its config's global batch (XLA's
    count of the compiled step, one device; the per-step optimizer update is shared by the batch)."""
    config = load_config(os.path.join(ROOT, STORED[dataset][3]))
    batch_size = config.train.batch_size
    run = setup.teacher_run(config, devices=jax.devices()[:1], data=synthetic_input(config, batch_size))
    batch = parallel.shard_batch(run.data.batch(0), run.mesh)
    return step_flops(run.step, run.state, batch) / batch_size, batch_size


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(STORED), choices=list(STORED))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="num_threads values to time")
    p.add_argument("--images", type=int, default=None,
                   help="images timed per setting (default: 2048 CIFAR-10, 512 CelebA, 256 LSUN)")
    p.add_argument("--examples", type=int, default=256, help="images in each synthetic dataset")
    p.add_argument("--batch", type=int, default=64, help="global batch of build_input (one process)")
    p.add_argument("--cores", type=int, default=16, help="host cores the projection assumes")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="accelerator dense bf16 peak (H100 SXM)")
    p.add_argument("--mfu", type=float, default=0.4, help="fraction of the peak the training step reaches")
    p.add_argument("--no-flops", action="store_true", help="skip the accelerator's rate (its compile)")
    args = p.parse_args(argv)
    default_images = {"cifar10": 2048, "celeb_a": 512, "lsun/bedroom": 256}
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}  jax {jax.__version__}  "
          f"PIL {PIL.__version__}  batch {args.batch}", flush=True)
    with tempfile.TemporaryDirectory() as data_dir:
        for dataset in args.datasets:
            encoded = encoded_images(dataset, args.examples)
            name = prepare(data_dir, dataset, encoded)
            kib = np.mean([len(e) for e in encoded]) / 1024
            decode_ms, resize_ms = per_image_ms(dataset, encoded)
            print(f"{dataset}: {STORED[dataset][0]}, {kib:.1f} KiB per image; one thread: decode "
                  f"{decode_ms:.3f} ms, crop/resize {resize_ms:.3f} ms per image", flush=True)
            split = None
            for threads in args.threads:
                rate, serial, parallel_s, other = pipeline_rate(
                    dataset, data_dir, name, threads=threads, batch=args.batch,
                    images=args.images or default_images[dataset])
                split = split or (serial, parallel_s)
                print(f"  num_threads {threads}: {rate:8.1f} images/s per process; CPU per image: calling "
                      f"thread {1e3 * serial:.3f} ms, decoding threads {1e3 * parallel_s:.3f} ms   "
                      f"[{other.note()}]", flush=True)
            serial, parallel_s = split  # from the first thread count: the least contended split
            bound = 1 / (serial + parallel_s / args.cores)
            print(f"  projected with {args.cores} threads on {args.cores} free cores: {bound:,.0f} images/s "
                  f"per process (1 / (serial + decoding / {args.cores}); an upper bound: the GIL is shared)",
                  flush=True)
            if not args.no_flops:
                flops, batch_size = flops_per_image(dataset)
                gpu = args.mfu * args.peak_tflops * 1e12 / flops
                print(f"  accelerator: {flops / 1e9:.1f} GFLOP per training image (batch {batch_size}); at "
                      f"{args.mfu:.0%} of {args.peak_tflops:g} TFLOP/s it trains {gpu:,.0f} images/s, "
                      f"8 of them {8 * gpu:,.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
