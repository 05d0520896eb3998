"""Sampling at the pass count: k-step generation against k network passes plus the prior draw.

  python benchmarks/bench_sampling.py --config experiments/digits.py --batch 1000 --steps 1 2 4 100
  python benchmarks/bench_sampling.py --config experiments/cifar10.py --batch 4 --steps 1 2 4 100

For each step count k, on one device after compiling, times what ``kacjax`` samples with
(:func:`kacjax.evaluation.sampling.generate`, ``timed=True``, as the report page does):

- a student: Euler, one unguided pass of the batch per step (a distilled student's
  guidance is in its weights);
- the teacher: the config's sampler, guided with the config's ``w`` (each evaluation one
  batched call on 2B rows);

next to their parts, timed alone: the prior draw and one network pass (student) or one
guided evaluation (teacher). ``ratio`` is the sampler's time over prior + k parts; the
speedup is the 100-step teacher's time over the 1-step student's. The network is untrained
(its speed is all that matters here). Every part is the fastest of ``--repeats`` runs; the
sampler's figure is ``generate``'s own (the fastest of a few runs, one when it takes 10 s or more).
"""

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from timing import OtherCpu, fastest_seconds

from kacjax.configs.defaults import load_config
from kacjax.core import samplers
from kacjax.core.flow import KacFlow
from kacjax.core.guidance import Guidance, null_label_of, velocity_field
from kacjax.data import example_shape
from kacjax.evaluation.sampling import generate
from kacjax.models import build_model
from kacjax.training import setup


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="experiments/NAME.py[:variant]")
    p.add_argument("--batch", type=int, default=1000, help="samples per call")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 100], help="step counts k")
    p.add_argument("--repeats", type=int, default=5, help="runs of each part (the fastest is kept)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    device = jax.devices()[0]
    model, flow = build_model(config.model), KacFlow.from_config(config.flow)
    shape, null = tuple(example_shape(config.data)), null_label_of(model)
    params = jax.device_put(setup.init_params(model, jax.random.PRNGKey(0), shape), device)
    num, w, method = args.batch, float(config.sample.w), config.sample.method
    labels = None if null is None else jax.device_put(jnp.arange(num, dtype=jnp.int32) % null, device)
    key = jax.random.PRNGKey(1)
    print(f"config {args.config}  batch {num}  shape {shape}  teacher {method} w={w:g}  "
          f"device {device.platform}  jax {jax.__version__}")

    prior = jax.jit(lambda k: flow.prior_sample(k, (num, *shape)))
    x, t = prior(key), jnp.float32(0.5)

    def one_evaluation(w_pass):  # parameters and labels as arguments, as the sampler takes them
        return jax.jit(lambda q, y, x, t: velocity_field(model, q, y, Guidance.for_model(model, w_pass))(x, t))

    with OtherCpu() as cpu:
        prior_s = fastest_seconds(prior, key, repeats=args.repeats)
        pass_s = {"student": fastest_seconds(one_evaluation(0.0), params, labels, x, t, repeats=args.repeats),
                  "teacher": fastest_seconds(one_evaluation(w), params, labels, x, t, repeats=args.repeats)}
    print(f"prior draw {prior_s * 1e3:.1f} ms; one pass {pass_s['student'] * 1e3:.1f} ms; one guided evaluation "
          f"{pass_s['teacher'] * 1e3:.1f} ms ({cpu.note()})")
    # What a single timed run right after compiling charges the 1-step student (the report page's
    # figure before it took the fastest run): one-off allocation and thread start-up.
    one_step = jax.jit(lambda q, y, k: samplers.integrate(
        velocity_field(model, q, y, Guidance()), flow.prior_sample(k, (num, *shape)),
        method="euler", steps=1, t_start=flow.T).x).lower(params, labels, key).compile()
    start = time.perf_counter()
    jax.block_until_ready(one_step(params, labels, key))
    first_s = time.perf_counter() - start
    print(f"1-step student, the first run after compiling: {first_s * 1e3:.1f} ms; the fastest of "
          f"{args.repeats} after it: {fastest_seconds(one_step, params, labels, key, repeats=args.repeats) * 1e3:.1f} ms")
    print(f"{'sampler':>28} {'k':>4} {'passes':>6} {'seconds':>9} {'prior + k parts':>15} {'ratio':>6} "
          f"{'images/s':>10}  other processes")
    seconds = {}
    for k in args.steps:
        for role, sampler, w_role in (("student", "euler", 0.0), ("teacher", method, w)):
            with OtherCpu() as cpu:
                generated = generate(key, params, labels, Guidance.for_model(model, w_role), model=model, flow=flow,
                                     num=num, shape=shape, method=sampler, steps=k, timed=True)
            seconds[role, k] = generated.seconds
            parts = prior_s + samplers.nfe(sampler, k) * pass_s[role]
            print(f"{role + ' (' + sampler + ')':>28} {k:>4} {generated.network_passes:>6} {generated.seconds:>9.3f} "
                  f"{parts:>15.3f} {generated.seconds / parts:>6.2f} {num / generated.seconds:>10.1f}  {cpu.note()}")
    if ("student", 1) in seconds and ("teacher", 100) in seconds:
        teacher_passes = 100 * samplers.nfe(method, 1) * (2 if null is not None and w else 1)
        print(f"speedup of the 1-step student over the 100-step teacher: "
              f"{seconds['teacher', 100] / seconds['student', 1]:.0f}x ({teacher_passes} passes against 1)")
    assert np.isfinite(list(seconds.values())).all()


if __name__ == "__main__":
    main(sys.argv[1:])
