"""One distillation step broken down into its parts, each jitted and timed alone.

  python benchmarks/bench_distill.py --config experiments/digits.py --inner-steps 5

Stage 1 of the config's chain with ``--inner-steps`` teacher sub-steps N per student step
(the stage-1 teacher is guided, so each sub-step is one batched call on 2B rows), on one
device after compiling. Parts, in the order the step runs them, every one a jitted function
of arrays (parameters included, never closed over as constants):

- grid: the grid index ``j`` and time ``t`` of each example;
- x_t: the forward-process draw at ``t`` (exact Kac noise);
- teacher: the N guided sub-steps from ``x_t`` to ``x_hat`` over ``[t, t - Delta]``;
- student update: the student's forward + backward and the Adam update;
- EMA: the EMA of the parameters, alone;
- guard: the non-finite check and the one ``lax.cond`` that skips the whole update: the
  difference between ``train_state.apply_gradients`` and the same update + EMA without it.

The whole step is the jitted step that training runs. Every figure is the fastest of
``--repeats`` runs and says how busy the machine was meanwhile.
"""

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import optax
from timing import OtherCpu, fastest_seconds

from kacjax.configs.defaults import load_config
from kacjax.core.guidance import Guidance, velocity_field
from kacjax.runtime import parallel
from kacjax.training import distill, rundir, setup, train_state
from kacjax.training.recipe import DistillRecipe
from kacjax.training.steps import Stage, teacher_endpoint
from kacjax.training.trained import Trained


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/digits.py")
    p.add_argument("--inner-steps", type=int, default=5, help="teacher sub-steps N per student step")
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    config = load_config(args.config)
    d = config.distill
    devices = jax.devices()[:1]
    # An untrained teacher (its speed is all that matters here), set up as the chain sets up stage 1.
    fresh = setup.teacher_run(config, devices=devices)
    teacher = Trained("(untrained)", rundir.teacher_meta(config, fresh.data.shape, fresh.data.num_classes),
                      fresh.model, fresh.flow, fresh.state.params, 0)
    M, N = 20, args.inner_steps
    stage = Stage(index=1, teacher_steps=M * N, student_steps=M, inner_steps=N, num_steps=1,
                  learning_rate=d.learning_rates[0])
    recipe = DistillRecipe.from_config(d)
    cfg = distill.stage_config(config, stage, recipe, teacher)
    run = setup.stage_run(cfg, stage, recipe, teacher, devices=devices)
    model, flow, tx, ema_decay = run.model, run.flow, run.tx, cfg.train.ema_decay
    batch = parallel.shard_batch(run.data.batch(0), run.mesh)
    x0, labels, (teacher_params,) = batch["x"], batch["label"], run.step_args
    B, delta, key = x0.shape[0], flow.T / M, jax.random.PRNGKey(0)
    state = run.state

    def grid(k):
        j = jax.random.randint(k, (B,), 0, M)
        return flow.T - j.astype(x0.dtype) * delta

    t = jax.jit(grid)(key)
    x_t = jax.jit(lambda k, x, s: flow.corrupt(k, x, s)[0])(key, x0, t)

    def teacher_part(q, y, x, s):
        guidance = Guidance.for_model(teacher.model, float(d.w))
        return teacher_endpoint(velocity_field(teacher.model, q, y, guidance), x, s, delta, method=d.inner_method,
                                steps=N)

    x_hat = jax.jit(teacher_part)(teacher_params, labels, x_t, t)

    def grads_of(params, y, x, s, target, k):
        def loss_fn(q):
            u_s = model.apply({"params": q}, x, s, y, train=True, rngs={"dropout": k})
            return jnp.mean(jnp.square(x - delta * u_s - target))

        return jax.value_and_grad(loss_fn)(params)

    def student_update(st, y, x, s, target, k):
        _, grads = grads_of(st.params, y, x, s, target, k)
        updates, opt_state = tx.update(grads, st.opt_state, st.params)
        return optax.apply_updates(st.params, updates), opt_state

    def update_and_ema(st, y, x, s, target, k):
        params, opt_state = student_update(st, y, x, s, target, k)
        return params, jax.tree.map(lambda e, q: ema_decay * e + (1.0 - ema_decay) * q, st.ema_params, params), opt_state

    def guarded(st, y, x, s, target, k):
        loss, grads = grads_of(st.params, y, x, s, target, k)
        return train_state.apply_gradients(st, loss, grads, tx, ema_decay)

    student_args = (state, labels, x_t, t, x_hat, key)
    with OtherCpu() as cpu:
        parts = {
            "grid (j, t)": fastest_seconds(jax.jit(grid), key, repeats=args.repeats),
            "x_t (forward Kac draw)": fastest_seconds(jax.jit(lambda k, x, s: flow.corrupt(k, x, s)[0]), key, x0, t,
                                                      repeats=args.repeats),
            f"teacher ({N} guided {d.inner_method} sub-steps)": fastest_seconds(
                jax.jit(teacher_part), teacher_params, labels, x_t, t, repeats=args.repeats),
            "student forward + backward + Adam": fastest_seconds(jax.jit(student_update), *student_args,
                                                                 repeats=args.repeats),
        }
        with_ema = fastest_seconds(jax.jit(update_and_ema), *student_args, repeats=args.repeats)
        with_guard = fastest_seconds(jax.jit(guarded), *student_args, repeats=args.repeats)
        parts["EMA"] = fastest_seconds(jax.jit(lambda e, q: jax.tree.map(
            lambda a, b: ema_decay * a + (1.0 - ema_decay) * b, e, q)), state.ema_params, state.params,
            repeats=args.repeats)
        parts["non-finite guard (one lax.cond)"] = with_guard - with_ema

        def whole(st):
            return run.step(st, batch, teacher_params)

        state, _ = whole(state)  # compiles; the step donates its state, so each call takes the last one's
        jax.block_until_ready(state)
        step_s = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            state, metrics = whole(state)
            jax.block_until_ready(metrics)
            step_s = min(step_s, time.perf_counter() - start)
    total = sum(parts.values())
    print(f"config {args.config}  batch {B}  N={N} {d.inner_method} guided w={d.w:g}  device {devices[0].platform}  "
          f"jax {jax.__version__}  ({cpu.note()})")
    for name, seconds in parts.items():
        print(f"{name:<40} {seconds * 1e3:8.1f} ms  {seconds / total:6.1%}")
    print(f"{'sum of the parts':<40} {total * 1e3:8.1f} ms")
    print(f"{'whole jitted distillation step':<40} {step_s * 1e3:8.1f} ms  (step / parts = {step_s / total:.2f})")


if __name__ == "__main__":
    main(sys.argv[1:])
