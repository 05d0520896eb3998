"""One distillation step against its parts: N teacher forwards and one student forward+backward.

  python benchmarks/bench_distill.py --config experiments/digits.py --inner-steps 5

Times, on one device after compiling: the jitted distillation step of a stage with
``--inner-steps`` teacher sub-steps (the stage-1 teacher is guided, so each sub-step
is one batched call on 2B rows), the teacher's N sub-steps alone, and one student
forward + backward with the Adam update (a teacher-training step minus the noise).
"""

import argparse
import sys
import time

import jax
import jax.numpy as jnp
from timing import seconds_per_call

from kacjax.configs.defaults import load_config
from kacjax.core import samplers
from kacjax.core.guidance import velocity_field
from kacjax.runtime import parallel
from kacjax.training import distill, rundir, setup
from kacjax.training.steps import Stage
from kacjax.training.trained import Trained


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/digits.py")
    p.add_argument("--inner-steps", type=int, default=5, help="teacher sub-steps N per student step")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    config = load_config(args.config)
    d, bs = config.distill, config.distill.train.batch_size
    devices = jax.devices()[:1]
    # An untrained teacher (its speed is all that matters here), set up as the chain sets up stage 1.
    fresh = setup.teacher_run(config, devices=devices)
    teacher = Trained("(untrained)", rundir.teacher_meta(config, fresh.data.shape, fresh.data.num_classes),
                      fresh.model, fresh.flow, fresh.state.params, 0)
    stage = Stage(index=1, teacher_steps=20 * args.inner_steps, student_steps=20, inner_steps=args.inner_steps,
                  num_steps=1, learning_rate=d.learning_rates[0])
    run = setup.stage_run(distill.stage_config(config, stage, teacher), stage, teacher, devices=devices)
    model, tx, state, null = run.model, run.tx, run.state, teacher.null_label
    batch = parallel.shard_batch(run.data.batch(0), run.mesh)

    def run_step(s):
        return run.train_step(s, batch)

    state, _ = run_step(state)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(args.repeats):
        state, metrics = run_step(state)
    jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - start) / args.repeats

    t = jnp.full((bs,), 0.5)
    u = velocity_field(model, teacher.params, batch["label"], w=float(d.w), null_label=null)
    teacher_s = seconds_per_call(jax.jit(lambda x: samplers.integrate(
        u, x, method=d.inner_method, steps=args.inner_steps, t_start=t, t_end=t - 0.05).x), batch["x"],
        repeats=args.repeats)

    def student_update(params, opt_state, x, labels):
        loss, grads = jax.value_and_grad(lambda q: jnp.mean(jnp.square(
            model.apply({"params": q}, x, t, labels, train=True)) ))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return jax.tree.map(jnp.add, params, updates), opt_state, loss

    student_s = seconds_per_call(jax.jit(student_update), state.params, state.opt_state, batch["x"], batch["label"],
                      repeats=args.repeats)
    passes = samplers.nfe(d.inner_method, args.inner_steps)
    print(f"config {args.config}  batch {bs}  N={args.inner_steps} {d.inner_method} guided w={d.w}"
          f"  device {jax.devices()[0].platform}  jax {jax.__version__}")
    print(f"distillation step            {step_s * 1e3:8.1f} ms")
    print(f"teacher, {passes} guided evaluations {teacher_s * 1e3:8.1f} ms")
    print(f"student forward+backward+Adam {student_s * 1e3:8.1f} ms")
    print(f"sum of parts                 {(teacher_s + student_s) * 1e3:8.1f} ms"
          f"  (step / parts = {step_s / (teacher_s + student_s):.2f})")


if __name__ == "__main__":
    main(sys.argv[1:])
