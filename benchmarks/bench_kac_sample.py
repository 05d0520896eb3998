"""Speed of the exact Kac sampler on one training batch, next to its alternatives.

  python benchmarks/bench_kac_sample.py
  python benchmarks/bench_kac_sample.py --baseline /tmp/kac_old.py   # e.g. from `git show REV:kacjax/core/kac.py`

One batch is ``--batch`` rows of ``--dim`` coordinates (default 128 x 3072, a CIFAR-10
batch), with ``t ~ U[0, 1]`` per row and ``a, c = 9, 3``. Timed per call (block until
ready) after a warm-up call that compiles; the table gives the median and minimum
over ``--repeats`` calls, draws per second at the median, and the cost relative to
one forward pass of a small conv net on the batch as images (defined here).
Rows: kac.sample (exact, O(1) per draw), on the whole batch and example by example as
training draws it (KacFlow.noise); optionally the same from another kac.py;
kac.simulate (explicit switching times, ``--max-flips`` per path); numpy's exact
Poisson-Beta sampler and numpy path simulation; kac.velocity on the batch. Then random
flights (kacjax.flight) over groups of 2 and 4 coordinates, and the noise with its exact
target as training computes it (KacFlow.corrupt) for noise_dim 1, 2 and 4 at the
variance-matched rates a, a, a / 2, with each flight's cost relative to the 1-D one.
Timings on a shared 2-core CPU vary by about +-40% between runs: compare rows
within one run only; the CPU other processes used during the run is printed.
"""

import argparse
import importlib.util
import os
import platform
import sys
import time

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from timing import OtherCpu

from kacjax import flight, kac
from kacjax.core.flow import KacFlow


class SmallConvNet(nn.Module):
    """Three 3x3 convolutions (32, 32, 3 channels): a velocity-shaped toy network
    (~3 GFLOP on 128 CIFAR-sized images; the reference UNet costs far more)."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(32, (3, 3))(x))
        x = nn.relu(nn.Conv(32, (3, 3))(x))
        return nn.Conv(3, (3, 3))(x)


def time_calls(fn, *args, repeats):
    """(first-call seconds, sorted per-call seconds); each call waits for its result."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, sorted(times)


def load_module(path):
    """Imports a kac.py from a file path (e.g. an older revision) as a module."""
    spec = importlib.util.spec_from_file_location("kac_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numpy_poisson_beta(rng, t, shape, a, c):
    """The exact O(1) sampler in numpy: n ~ Poisson(a t), Beta(floor(n/2)+1, ceil(n/2))."""
    t = np.broadcast_to(t, shape)
    n = rng.poisson(a * t)
    half = n // 2
    b = rng.beta(half + 1, np.maximum(n - half, 1))
    sign = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
    return sign * c * t * np.where(n == 0, 1.0, 2 * b - 1)


def numpy_paths(rng, t, shape, a, c, max_flips):
    """Path simulation in numpy: K(t) from max_flips exponential switching gaps."""
    t = np.broadcast_to(t, shape)[..., None]
    times = np.minimum(np.cumsum(rng.exponential(1.0 / a, (*shape, max_flips)), axis=-1), t)
    starts = np.concatenate([np.zeros((*shape, 1)), times[..., :-1]], axis=-1)
    direction = np.where(np.arange(max_flips) % 2 == 0, 1.0, -1.0)
    last = (1.0 if max_flips % 2 == 0 else -1.0) * (t[..., 0] - times[..., -1])
    sign = np.where(rng.random(shape) < 0.5, 1.0, -1.0)
    return sign * c * (np.sum(direction * (times - starts), axis=-1) + last)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128, help="rows (images)")
    p.add_argument("--dim", type=int, default=3072, help="coordinates per row (32 * 32 * 3)")
    p.add_argument("--a", type=float, default=9.0, help="switching rate")
    p.add_argument("--c", type=float, default=3.0, help="speed")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per row of the table")
    p.add_argument("--max-flips", type=int, default=40, help="switching times per simulated path")
    p.add_argument("--baseline", default=None, help="path of another kac.py whose sample() to time too")
    p.add_argument("--no-numpy", action="store_true", help="skip the numpy rows")
    args = p.parse_args(argv)
    shape, a, c = (args.batch, args.dim), args.a, args.c
    draws = args.batch * args.dim
    key = jax.random.PRNGKey(0)
    t = jax.random.uniform(jax.random.PRNGKey(1), (args.batch, 1))
    rows = []  # (name, first-call s, sorted per-call s)

    def add(name, fn, *fn_args):
        with OtherCpu() as other:
            rows.append((name, *time_calls(fn, *fn_args, repeats=args.repeats)))
        busy.append(other.cores)

    busy = []  # cores other processes used during each row

    add("kac.sample (exact)", jax.jit(lambda k, t: kac.sample(k, t, shape, a=a, c=c)), key, t)
    flow = KacFlow(a=a, c=c)
    add("KacFlow.noise (kac.sample per example)", jax.jit(lambda k, t: flow.noise(k, t[:, 0], shape)), key, t)
    if args.baseline:
        old = load_module(args.baseline)
        add(f"kac.sample from {os.path.basename(args.baseline)}",
            jax.jit(lambda k, t: old.sample(k, t, shape, a=a, c=c)), key, t)

    @jax.jit
    def simulate(k, t):
        keys = jax.random.split(k, args.batch)
        x, _, complete = jax.vmap(
            lambda k, t: kac.simulate(k, t[0], (args.dim,), a=a, c=c, max_flips=args.max_flips))(keys, t)
        return x, jnp.sum(~complete)

    add(f"kac.simulate ({args.max_flips} flips/path)", simulate, key, t)
    incomplete = int(simulate(key, t)[1])

    if not args.no_numpy:
        rng, t_np = np.random.default_rng(0), np.asarray(t, np.float64)
        add("numpy Poisson-Beta (exact)", lambda: numpy_poisson_beta(rng, t_np, shape, a, c))
        add(f"numpy paths ({args.max_flips} flips/path)",
            lambda: numpy_paths(rng, t_np, shape, a, c, args.max_flips))

    x, on_atom = kac.sample(key, t, shape, a=a, c=c)
    add("kac.velocity on the batch",
        jax.jit(lambda x, t, m: kac.velocity(x, t, a=a, c=c, on_atom=m)), x, t, on_atom)

    for dim in flight.DIMS:
        flights = (args.batch, args.dim // dim, dim)
        add(f"flight.sample (exact), dim={dim}",
            jax.jit(lambda k, t, flights=flights, dim=dim: flight.sample(k, t, flights, a=a, c=c, dim=dim)), key, t)
    x0, t_row, corrupt = jnp.zeros(shape), t[:, 0], {}
    for dim in (1, *flight.DIMS):
        noise_flow = KacFlow(a=a if dim == 1 else a * 2 / dim, c=c, noise_dim=dim)
        add(f"KacFlow.corrupt, noise_dim={dim} (a={noise_flow.a:g})",
            jax.jit(lambda k, x0, t, f=noise_flow: f.corrupt(k, x0, t)), key, x0, t_row)
        corrupt[dim] = rows[-1][2][len(rows[-1][2]) // 2]

    image_shape = (32, 32, 3) if args.dim == 3072 else (args.dim, 1, 1)
    images = jnp.zeros((args.batch, *image_shape))
    net = SmallConvNet()
    params = net.init(jax.random.PRNGKey(2), images[:1])
    forward = jax.jit(net.apply)
    _, forward_times = time_calls(forward, params, images, repeats=args.repeats)
    forward_s = forward_times[len(forward_times) // 2]
    n_params = sum(v.size for v in jax.tree.leaves(params))
    gflop = forward.lower(params, images).compile().cost_analysis()["flops"] / 1e9

    print(f"machine: {platform.machine()} CPU, {os.cpu_count()} cores ({jax.devices()[0].device_kind}); "
          f"python {platform.python_version()}, jax {jax.__version__}, flax {flax.__version__}, "
          f"numpy {np.__version__}")
    print(f"batch {args.batch} x {args.dim} = {draws:,} draws, a={a:g} c={c:g}, t ~ U[0, 1] per row; "
          f"median and min of {args.repeats} calls")
    print(f"other processes: {max(busy):.2f} of {os.cpu_count()} cores at most during a row"
          f"{'  SHARED: timings inflated' if max(busy) > OtherCpu.SHARED else ''}")
    print(f"forward pass of a {n_params:,}-parameter conv net ({gflop:.1f} GFLOP) on {images.shape}: "
          f"{forward_s * 1e3:.1f} ms (median)")
    print()
    header = f"{'method':<40} {'first call':>10} {'median':>9} {'min':>9} {'Mdraws/s':>9} {'x forward':>9}"
    print(header)
    print("-" * len(header))
    for name, first, times in rows:
        median = times[len(times) // 2]
        print(f"{name:<40} {first * 1e3:8.0f}ms {median * 1e3:7.1f}ms {times[0] * 1e3:7.1f}ms "
              f"{draws / median / 1e6:9.1f} {median / forward_s:9.2f}")
    print(f"\nsimulated paths that needed more than {args.max_flips} flips: {incomplete}")
    for dim in flight.DIMS:
        print(f"noise and target, noise_dim={dim} against noise_dim=1: {corrupt[dim] / corrupt[1]:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
