"""Accelerator benchmark: training throughput and MFU, sampling time for 50,000 images, input pipeline rate.

  python benchmarks/bench_accelerator.py                        # everything, on whatever backend JAX finds
  python benchmarks/bench_accelerator.py --only train --models reference --dtypes float32 --batch 8 --steps 2
  python benchmarks/bench_accelerator.py --peak-tflops 989      # a device missing from the peak table

On all local devices, with synthetic data of the right shape:
1. the teacher training step of the CIFAR-10 reference UNet and the larger DistillKac UNet, in
   float32 and bfloat16: images/s and model FLOP utilisation (XLA's FLOP count of the step over
   the step time, over the devices' peak dense bf16 FLOP/s from a small table or --peak-tflops);
2. the time to sample 50,000 CIFAR-10-size images with the reference UNet at 1, 2, 4 and 20 NFE
   (Euler steps, one conditional pass each), sharded over the devices, projected from timed
   batches, next to the FLOP-bound time at peak;
3. the input pipeline's images/s on this host for CIFAR-10, CelebA-64 and LSUN-256 geometry
   (decode, crop/resize, flip) from small synthetic prepared TFDS datasets, next to the training
   rate it has to feed.
"""

import argparse
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from kacjax.configs.defaults import load_config
from kacjax.data import Input, build_input, example_shape
from kacjax.core.guidance import Guidance
from kacjax.data.sources import ArraySource
from kacjax.evaluation.sampling import generate
from kacjax.runtime import parallel
from kacjax.training import setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Dense bf16 peak TFLOP/s per device (vendor figures), matched against jax's device_kind.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "v5p": 459.0, "v5 lite": 197.0,
               "v5e": 197.0, "v4": 275.0, "v6": 918.0}
MODELS = {"reference": "experiments/cifar10.py", "distillkac": "experiments/cifar10.py:distillkac"}


def _peak(flag):
    if flag:
        return flag * 1e12
    kind = jax.devices()[0].device_kind
    return next((v * 1e12 for k, v in PEAK_TFLOPS.items() if k.lower() in kind.lower()), None)


def _time(fn, repeats):
    out = fn()
    jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / repeats


def synthetic_input(config, batch):
    """``batch`` random examples of ``config``'s shape and classes, as an Input of global batch ``batch``."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, *example_shape(config.data))).astype(np.float32)
    num_classes = config.model.get("num_classes")
    labels = rng.integers(0, num_classes or 1, batch).astype(np.int32)
    return Input(ArraySource(x, labels, num_classes), global_batch_size=batch, seed=0)


def step_flops(step, state, batch) -> float:
    """XLA's FLOP count of one jitted training ``step(state, batch)``: compiled, not run (``state``
    and ``batch`` may be arrays or ``jax.ShapeDtypeStruct``s)."""
    return step.lower(state, batch).compile().cost_analysis()["flops"]


def train_rows(args, peak):
    rows = []
    for name in args.models:
        for dtype in args.dtypes:
            config = load_config(os.path.join(ROOT, MODELS[name]))
            config.model.dtype = dtype
            config.train.batch_size = args.batch
            run = setup.teacher_run(config, data=synthetic_input(config, args.batch))
            batch = parallel.shard_batch(run.data.batch(0), run.mesh)
            state = run.state
            start = time.perf_counter()
            state, _ = run.step(state, batch)
            jax.block_until_ready(state)
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(args.steps):
                state, metrics = run.step(state, batch)
            jax.block_until_ready(metrics)
            step_s = (time.perf_counter() - start) / args.steps
            flops = step_flops(run.step, state, batch)
            mfu = flops / step_s / (peak * jax.device_count()) if peak else float("nan")
            rows.append((name, dtype, args.batch, compile_s, step_s, args.batch / step_s, flops / 1e12, mfu))
            print(f"train {name:10s} {dtype:8s} batch {args.batch:5d}  compile {compile_s:6.1f} s  step "
                  f"{step_s * 1e3:9.1f} ms  {args.batch / step_s:9.1f} images/s  {flops / 1e12:8.3f} TFLOP/step  "
                  f"MFU {mfu:.1%}", flush=True)
    return rows


def sampling_rows(args, peak):
    config = load_config(os.path.join(ROOT, MODELS["reference"]))
    config.train.batch_size = args.sample_batch
    run = setup.teacher_run(config, data=synthetic_input(config, args.sample_batch))
    labels = parallel.shard_batch(np.arange(args.sample_batch, dtype=np.int32) % 10, run.mesh)
    rows = []
    for nfe in args.nfe:
        def batch(key=jax.random.PRNGKey(0)):
            return generate(key, run.state.ema_params, labels, Guidance(), model=run.model, flow=run.flow,
                            num=args.sample_batch, shape=(32, 32, 3), method="euler", steps=nfe, mesh=run.mesh).x

        seconds = _time(batch, args.sample_repeats)
        total = seconds * 50_000 / args.sample_batch
        per_pass = jax.jit(lambda p, x, t, y: run.model.apply({"params": p}, x, t, y, train=False)).lower(
            run.state.ema_params, jnp.zeros((args.sample_batch, 32, 32, 3)), jnp.zeros(args.sample_batch),
            labels).compile().cost_analysis()["flops"] / args.sample_batch
        bound = 50_000 * nfe * per_pass / (peak * jax.device_count()) if peak else float("nan")
        rows.append((nfe, total, bound))
        print(f"sample 50,000 at {nfe:2d} NFE: {total:8.1f} s (batches of {args.sample_batch})  "
              f"FLOP-bound {bound:8.2f} s  ratio {total / bound:.1f}x", flush=True)
    return rows


def _prepare(data_dir, name, shape, count):
    """A small prepared TFDS dataset of random PNG images of ``shape`` under ``data_dir/name``."""
    import PIL.Image
    import tensorflow_datasets as tfds

    class Synthetic(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=shape), "label": tfds.features.ClassLabel(num_classes=10)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            rng = np.random.default_rng(0)
            for i in range(count):
                yield i, {"image": PIL.Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)), "label": i % 10}

    Synthetic.name = name
    Synthetic(data_dir=data_dir, file_format="array_record").download_and_prepare()


def pipeline_rows(args, train_rate):
    geometry = {"cifar10": (32, 32, 3), "celeb_a": (218, 178, 3), "lsun/bedroom": (256, 341, 3)}
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        for dataset, shape in geometry.items():
            name = "kacjax_bench_" + dataset.replace("/", "_")
            _prepare(data_dir, name, shape, args.pipeline_examples)
            data = build_input({"name": dataset, "tfds_name": name, "data_dir": data_dir},
                               global_batch_size=args.pipeline_batch, seed=0)
            data.batch(0)
            start = time.perf_counter()
            steps = max(1, args.pipeline_examples // args.pipeline_batch)
            for s in range(steps):
                data.batch(s)
            rate = steps * args.pipeline_batch / (time.perf_counter() - start)
            rows.append((dataset, rate))
            need = f"  training consumes {train_rate:.0f} images/s on this host" if train_rate else ""
            print(f"input {dataset:12s} {rate:9.1f} images/s per host (decode, crop/resize, flip){need}", flush=True)
    return rows


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("all", "train", "sample", "input"), default="all")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--batch", type=int, default=128, help="global training batch")
    p.add_argument("--steps", type=int, default=10, help="timed training steps")
    p.add_argument("--sample-batch", type=int, default=1000)
    p.add_argument("--sample-repeats", type=int, default=2)
    p.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 4, 20])
    p.add_argument("--pipeline-examples", type=int, default=512)
    p.add_argument("--pipeline-batch", type=int, default=128)
    p.add_argument("--peak-tflops", type=float, default=None, help="per-device dense bf16 peak, TFLOP/s")
    args = p.parse_args(argv)
    peak = _peak(args.peak_tflops)
    print(f"backend {jax.default_backend()}  {jax.device_count()} x {jax.devices()[0].device_kind}  "
          f"peak {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s per device (bf16 dense)  jax {jax.__version__}",
          flush=True)
    train = train_rows(args, peak) if args.only in ("all", "train") else []
    if args.only in ("all", "sample"):
        sampling_rows(args, peak)
    if args.only in ("all", "input"):
        pipeline_rows(args, max((r[5] for r in train), default=None) / jax.process_count() if train else None)


if __name__ == "__main__":
    main(sys.argv[1:])
