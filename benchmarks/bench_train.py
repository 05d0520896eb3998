"""Teacher training speed: images/s and step time for a config, and the Kac noise share.

  python benchmarks/bench_train.py --config experiments/digits.py --steps 20
  python benchmarks/bench_train.py --config experiments/cifar10.py --batch 8 --steps 3

Times the jitted train step (after compiling it) on one device, and separately the
forward-process part (t, Kac noise, exact target) at the same batch, so its share of
the step can be read off. Timings on a shared 2-core CPU vary by about +-40%.
"""

import argparse
import os
import sys
import time

import jax
from timing import seconds_per_call

from kacjax.cli.defaults import load_config
from kacjax.core.flow import sample_times
from kacjax.data import Input
from kacjax.data.sources import ArraySource
from kacjax.training import parallel, setup


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="experiments/NAME.py[:variant]")
    p.add_argument("--batch", type=int, default=None, help="global batch (default: the config's)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    args = p.parse_args(argv)
    config = load_config(args.config)
    config.train.batch_size = batch_size = args.batch or config.train.batch_size
    data = None
    if config.data.name not in ("digits", "toy2d"):  # image datasets need no files here: random images
        import numpy as np

        size = {"cifar10": 32, "celeb_a": 64, "lsun/bedroom": 256}[config.data.name]
        num_classes = config.model.get("num_classes")
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (batch_size, size, size, 3)).astype("float32")
        data = Input(ArraySource(x, rng.integers(0, num_classes or 1, batch_size).astype("int32"), num_classes),
                     global_batch_size=batch_size, seed=0)
    run = setup.teacher_run(config, devices=jax.devices()[:1], data=data)
    mesh, state, step, flow = run.mesh, run.state, run.step, run.flow
    sharded = parallel.shard_batch(run.data.batch(0), mesh)
    start = time.perf_counter()
    state, _ = step(state, sharded)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step(state, sharded)
    jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - start) / args.steps

    @jax.jit
    def noise(key, x0):
        k_t, k_n = jax.random.split(key)
        return flow.corrupt(k_n, x0, sample_times(k_t, x0.shape[0], flow), mesh=mesh)

    noise_s = seconds_per_call(noise, jax.random.PRNGKey(0), sharded["x"], repeats=max(args.steps, 10))
    params = sum(x.size for x in jax.tree.leaves(state.params))
    print(f"config {args.config}  batch {batch_size}  params {params:,}  device {jax.devices()[0].platform}"
          f"  cores {os.cpu_count()}  jax {jax.__version__}")
    print(f"first step (compile + run) {compile_s:.1f} s")
    print(f"train step {step_s * 1e3:.1f} ms  = {batch_size / step_s:.1f} images/s")
    gflop = step.lower(state, sharded).compile().cost_analysis()["flops"] / 1e9  # XLA's count for the step
    print(f"step work {gflop:.1f} GFLOP  = {gflop / step_s:.1f} GFLOP/s sustained")
    print(f"Kac noise + target {noise_s * 1e3:.2f} ms  = {100 * noise_s / step_s:.2f}% of the step")


if __name__ == "__main__":
    main(sys.argv[1:])
