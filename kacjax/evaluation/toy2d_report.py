"""The toy2d experiment's evaluation: metrics per sampler and a figure.

Compares samples of the trained teacher (EMA parameters), drawn with each sampler,
to held-out target samples: energy distance, sliced Wasserstein-2, and for
``gaussians9`` the mode coverage. The untrained network is scored the same way as
a baseline. The figure shows samples, trajectories, and the per-coordinate speed
``|u(x(t), t)|`` along trajectories against ``c`` and the bound
``max|f'| max|x0| + max g' c``.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from kacjax.core import samplers
from kacjax.core.guidance import velocity_field
from kacjax.data.toy2d import sample_toy2d, toy2d_modes
from kacjax.evaluation import metrics, plots
from kacjax.evaluation.generator import load
from kacjax.evaluation.sampling import generate
from kacjax.training import logs, setup, train_state
from kacjax.training.rundir import RunDir

HELD_OUT_SEED = 20260101


def check_config(config) -> None:
    """Raises ValueError for ``evaluate`` values this report cannot use."""
    ev = config.evaluate
    for method in ev.methods:
        samplers.check_method(method)
    for name, least in (("num_samples", 2), ("steps", 1), ("num_trajectories", 1)):
        if not (isinstance(ev[name], int) and ev[name] >= least):
            raise ValueError(f"bad config: evaluate.{name} must be an integer >= {least}, got {ev[name]!r}")


def _score(samples, reference, target, mode_std) -> dict:
    scores = {
        "energy_distance": metrics.energy_distance(samples, reference),
        "sliced_wasserstein": metrics.sliced_wasserstein(samples, reference),
    }
    if target == "gaussians9":
        cover = metrics.mode_coverage(samples, toy2d_modes(target), radius=max(10 * mode_std, 0.05))
        scores.update({k: v for k, v in cover.items() if np.isscalar(v)})
    return scores


def _speeds(gen, trajectory, times):
    """Max and mean per-coordinate ``|u|`` at each grid time, shapes ``(steps + 1,)``."""
    u = velocity_field(gen.model, gen.params_for(None), None, w=0.0, null_label=None)
    speed = jax.jit(jax.vmap(lambda x, t: jnp.abs(u(x, t))))(trajectory, times)
    return np.asarray(speed.max(axis=(1, 2))), np.asarray(speed.mean(axis=(1, 2)))


def toy2d_report(config, workdir: str) -> dict:
    """Writes ``workdir/toy2d_metrics.json`` and ``workdir/toy2d.png``; returns the metrics."""
    check_config(config)
    ev, data = config.evaluate, config.data
    layout = RunDir(workdir)
    gen = load(workdir, stage=0)
    reference = sample_toy2d(data.target, HELD_OUT_SEED, ev.num_samples, data.mode_std)
    key = jax.random.PRNGKey(config.seed + 7)
    results = {"target": data.target, "num_samples": ev.num_samples, "steps": ev.steps, "samplers": {}}
    samples = {}
    for method in ev.methods:
        x = gen.sample(key, ev.num_samples, steps=ev.steps, sampler=method, batch_size=ev.num_samples)
        samples[method] = x
        results["samplers"][method] = {"nfe": samplers.nfe(method, ev.steps),
                                       **_score(x, reference, data.target, data.mode_std)}
        logs.info(f"evaluate: {method}, {ev.steps} steps: energy distance "
                  f"{results['samplers'][method]['energy_distance']:.4g}")
    tx = train_state.make_optimizer(config.train)
    untrained = setup.make_init(gen.model, tx, gen.shape, False)(jax.random.PRNGKey(config.seed)).params
    x0 = generate(
        key, untrained, None, 0.0, model=gen.model, flow=gen.flow, num=ev.num_samples, shape=gen.shape,
        method=ev.methods[-1], steps=ev.steps,
    ).x
    results["untrained"] = _score(np.asarray(x0), reference, data.target, data.mode_std)
    path = generate(
        key, gen.params_for(None), None, 0.0, model=gen.model, flow=gen.flow, num=ev.num_trajectories,
        shape=gen.shape,
        method=ev.methods[-1], steps=ev.steps, return_trajectory=True,
    )
    max_speed, mean_speed = _speeds(gen, path.trajectory, path.times)
    flow = gen.flow
    bound = float(jnp.max(jnp.abs(flow.df(path.times))) * np.abs(reference).max()
                  + jnp.max(flow.dg(path.times)) * flow.c)
    results["speed"] = {"max": float(max_speed.max()), "mean_max": float(mean_speed.max()), "c": flow.c,
                        "bound": bound}
    if jax.process_index() == 0:
        with open(layout.report("toy2d_metrics.json"), "w") as f:
            json.dump(results, f, indent=2)
        _figure(layout.report("toy2d.png"), reference, samples, np.asarray(path.trajectory),
                np.asarray(path.times), max_speed, mean_speed, results)
    return results


def _figure(path, reference, samples, trajectory, times, max_speed, mean_speed, results) -> None:
    panels = 1 + len(samples) + 2
    fig, axes = plots.subplots(panels, (3.2 * panels, 3.4))
    lim = 1.6 if results["target"] == "gaussians9" else 1.4
    def scatter(ax, pts, title):
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, aspect="equal")
    scatter(axes[0], reference, f"target ({results['target']})")
    for ax, (method, x) in zip(axes[1:], samples.items()):
        r = results["samplers"][method]
        scatter(ax, x, f"{method}, NFE {r['nfe']}\nED {r['energy_distance']:.3g}")
    ax = axes[-2]
    for i in range(trajectory.shape[1]):
        ax.plot(trajectory[:, i, 0], trajectory[:, i, 1], lw=0.5, alpha=0.6)
    ax.scatter(trajectory[-1, :, 0], trajectory[-1, :, 1], s=4, c="k")
    ax.set(title="trajectories (T -> 0)", aspect="equal")
    ax = axes[-1]
    ax.plot(times, max_speed, label="max |u| per coordinate")
    ax.plot(times, mean_speed, label="mean |u|")
    ax.axhline(results["speed"]["c"], color="k", ls="--", lw=0.8, label="c")
    ax.axhline(results["speed"]["bound"], color="r", ls=":", lw=0.8, label="bound")
    ax.set(xlabel="t", title="speed along trajectories")
    ax.legend(fontsize=6)
    plots.save(fig, path)
