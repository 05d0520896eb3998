"""Teacher training speed: images/s and step time for a config, and the Kac noise share.

  python benchmarks/bench_train.py --config experiments/digits.py --steps 20
  python benchmarks/bench_train.py --config experiments/cifar10.py --batch 8 --steps 3

Times, on one device, the jitted train step (compile, then steps) next to a minimal step of
the same UNet (forward + backward + Adam on fixed inputs: no Kac noise, EMA or non-finite
guard), and the forward-process part (t, Kac noise, exact target) alone, so the overhead
of each part can be read off. Every figure says how many cores other processes kept busy
while it was timed (from /proc/stat), and flags a shared machine.
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import optax
from timing import OtherCpu, seconds_per_call

from kacjax.configs.defaults import load_config
from kacjax.core.flow import sample_times
from kacjax.data import Input
from kacjax.data.sources import ArraySource
from kacjax.runtime import parallel
from kacjax.training import setup


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
    mesh, flow, model, tx = run.mesh, run.flow, run.model, run.tx
    sharded = parallel.shard_batch(run.data.batch(0), mesh)
    fresh = jax.tree.map(jnp.copy, (run.state.params, run.state.opt_state))  # the full step donates its state
    params = sum(x.size for x in jax.tree.leaves(run.state.params))
    full = _measure(run.step, (run.state, sharded), args.steps)

    # The same network in a minimal step: forward + backward + Adam on fixed inputs, no Kac
    # noise, no EMA, no non-finite guard: what the full step is measured against.
    t = jnp.full((batch_size,), 0.5)
    labels = sharded["label"] if config.model.get("num_classes") is not None else None

    def minimal(params, opt_state, x):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean(jnp.square(model.apply(
            {"params": p}, x, t, labels, train=True, rngs={"dropout": jax.random.PRNGKey(1)}) - x)))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    bare = _measure(jax.jit(minimal, donate_argnums=(0, 1)), (*fresh, sharded["x"]), args.steps)

    @jax.jit
    def noise(key, x0):
        k_t, k_n = jax.random.split(key)
        return flow.corrupt(k_n, x0, sample_times(k_t, x0.shape[0], flow), mesh=mesh)

    with OtherCpu() as other:
        noise_s = seconds_per_call(noise, jax.random.PRNGKey(0), sharded["x"], repeats=max(args.steps, 10))
    print(f"config {args.config}  batch {batch_size}  params {params:,}  device {jax.devices()[0].platform}"
          f"  cores {os.cpu_count()}  jax {jax.__version__}")
    for name, m in (("train step (full)", full), ("minimal step (same UNet)", bare)):
        print(f"{name:26s} compile + first run {m['compile_s']:6.1f} s   step {m['step_s'] * 1e3:9.1f} ms"
              f" = {batch_size / m['step_s']:8.1f} images/s   {m['gflop']:.1f} GFLOP"
              f" = {m['gflop'] / m['step_s']:.1f} GFLOP/s   [{m['other']}]")
    print(f"full / minimal: step {full['step_s'] / bare['step_s']:.2f}x, compile {full['compile_s'] / bare['compile_s']:.2f}x")
    print(f"Kac noise + target {noise_s * 1e3:.2f} ms  = {100 * noise_s / full['step_s']:.2f}% of the step"
          f"   [{other.note()}]")


def _measure(step, args, steps: int) -> dict:
    """Compile + first run, then the mean time of ``steps`` more; ``step(*args)`` returns the new args' head."""
    with OtherCpu() as compile_other:
        start = time.perf_counter()
        out = step(*args)
        jax.block_until_ready(out)
        compile_s = time.perf_counter() - start
    with OtherCpu() as other:
        start = time.perf_counter()
        for _ in range(steps):
            out = step(*out[:-1], *args[len(out) - 1:])
        jax.block_until_ready(out)
        step_s = (time.perf_counter() - start) / steps
    gflop = step.lower(*out[:-1], *args[len(out) - 1:]).compile().cost_analysis()["flops"] / 1e9  # XLA's count
    shared = compile_other.cores > OtherCpu.SHARED or other.cores > OtherCpu.SHARED
    return dict(compile_s=compile_s, step_s=step_s, gflop=gflop,
                other=other.note() + ("  (shared while compiling)" if shared and other.cores <= OtherCpu.SHARED else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
