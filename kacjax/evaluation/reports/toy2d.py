"""The toy2d report: metrics per sampler and a figure.

Compares samples of the trained teacher (EMA parameters), drawn with each sampler,
to held-out target samples: energy distance, sliced Wasserstein-2, and for
``gaussians9`` the mode coverage. The untrained network is scored the same way as
a baseline. The figure shows samples, trajectories, and the per-coordinate speed
``|u(x(t), t)|`` along trajectories against ``c`` and the bound
``max|f'| max|x0| + max g' c``. Files: ``toy2d_metrics.json`` and ``toy2d.png``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kacjax.core import samplers
from kacjax.core.guidance import Guidance, velocity_field
from kacjax.data.toy2d import sample_toy2d, toy2d_modes
from kacjax.evaluation.artifacts import save, subplots, write_report
from kacjax.evaluation.generator import Generator
from kacjax.evaluation.metrics import distances
from kacjax.evaluation.sampling import generate
from kacjax.runtime import logs
from kacjax.training import setup
from kacjax.training.rundir import RunDir

HELD_OUT_SEED = 20260101


@dataclasses.dataclass(frozen=True)
class Toy2dSettings:
    """The only place the toy2d report reads its config: ``evaluate`` (samplers compared at
    ``steps`` steps on ``num_samples`` draws, Euler also at each of ``few_steps``, ``num_trajectories``
    paths drawn), the target (``data``) and the seed (draws from ``seed + 7``, the untrained baseline
    from ``seed``)."""

    methods: tuple
    num_samples: int
    steps: int
    few_steps: tuple
    num_trajectories: int
    target: str
    mode_std: float
    seed: int

    @classmethod
    def from_config(cls, config) -> Toy2dSettings:
        ev = config.evaluate
        return cls(methods=tuple(ev.methods), num_samples=ev.num_samples, steps=ev.steps,
                   few_steps=tuple(ev.get("few_steps", ())), num_trajectories=ev.num_trajectories,
                   target=config.data.target, mode_std=config.data.mode_std,
                   seed=config.seed)


def check(config, mesh) -> None:
    """Raises ValueError for ``evaluate`` values this report cannot use (``mesh``: unused, the
    report samples on one device)."""
    del mesh
    s = Toy2dSettings.from_config(config)
    if not s.methods:
        raise ValueError("bad config: evaluate.methods must name at least one sampler, got ()")
    for method in s.methods:
        samplers.check_method(method)
    for name, least in (("num_samples", 2), ("steps", 1), ("num_trajectories", 1)):
        value = getattr(s, name)
        if not (isinstance(value, int) and value >= least):
            raise ValueError(f"bad config: evaluate.{name} must be an integer >= {least}, got {value!r}")
    if not all(isinstance(k, int) and k >= 1 for k in s.few_steps):
        raise ValueError(f"bad config: evaluate.few_steps must be integers >= 1, got {s.few_steps!r}")


def score(samples, reference, target: str, mode_std: float) -> dict:
    """Energy distance and sliced W2 of ``samples`` ``(n, 2)`` to ``reference``, and the mode coverage
    of ``gaussians9``."""
    scores = {
        "energy_distance": distances.energy_distance(samples, reference),
        "sliced_wasserstein": distances.sliced_wasserstein(samples, reference),
    }
    if target == "gaussians9":
        cover = distances.mode_coverage(samples, toy2d_modes(target), radius=max(10 * mode_std, 0.05))
        scores.update({k: v for k, v in cover.items() if np.isscalar(v)})
    return scores


def untrained_params(gen: Generator, seed: int):
    """The parameters ``gen``'s network starts from when trained with ``seed`` (the baseline)."""
    init = setup.make_init(gen.model, optax.identity(), gen.shape)  # the optimizer leaves params as they are
    return init(jax.random.PRNGKey(seed)).params


def _speeds(gen, trajectory, times):
    """Max and mean per-coordinate ``|u|`` at each grid time, shapes ``(steps + 1,)``."""
    u = velocity_field(gen.model, gen.params_for(None), None, Guidance())
    speed = jax.jit(jax.vmap(lambda x, t: jnp.abs(u(x, t))))(trajectory, times)
    return np.asarray(speed.max(axis=(1, 2))), np.asarray(speed.mean(axis=(1, 2)))


def run(config, workdir: str) -> dict:
    """Writes ``workdir/toy2d_metrics.json`` and ``workdir/toy2d.png``; returns the metrics."""
    s = Toy2dSettings.from_config(config)
    layout = RunDir(workdir)
    gen = Generator.load(layout.resolve(0))
    reference = sample_toy2d(s.target, HELD_OUT_SEED, s.num_samples, s.mode_std)
    key = jax.random.PRNGKey(s.seed + 7)
    results = {"target": s.target, "num_samples": s.num_samples, "steps": s.steps, "samplers": {}}
    samples = {}
    for method in s.methods:
        x = gen.sample(key, s.num_samples, steps=s.steps, sampler=method, batch_size=s.num_samples)
        samples[method] = x
        results["samplers"][method] = {"nfe": samplers.nfe(method, s.steps),
                                       **score(x, reference, s.target, s.mode_std)}
        logs.info(f"evaluate: {method}, {s.steps} steps: energy distance "
                  f"{results['samplers'][method]['energy_distance']:.4g}")
    results["few_steps"] = {}
    for k in s.few_steps:  # Euler: k network passes
        x = gen.sample(key, s.num_samples, steps=k, sampler="euler", batch_size=s.num_samples)
        results["few_steps"][str(k)] = score(x, reference, s.target, s.mode_std)
        logs.info(f"evaluate: euler, {k} steps: energy distance "
                  f"{results['few_steps'][str(k)]['energy_distance']:.4g}")
    x0 = generate(
        key, untrained_params(gen, s.seed), None, Guidance(), model=gen.model, flow=gen.flow, num=s.num_samples,
        shape=gen.shape, method=s.methods[-1], steps=s.steps,
    ).x
    results["untrained"] = score(np.asarray(x0), reference, s.target, s.mode_std)
    path = generate(
        key, gen.params_for(None), None, Guidance(), model=gen.model, flow=gen.flow, num=s.num_trajectories,
        shape=gen.shape, method=s.methods[-1], steps=s.steps, return_trajectory=True,
    )
    max_speed, mean_speed = _speeds(gen, path.trajectory, path.times)
    flow = gen.flow
    bound = None  # of the target: max|f'| max|x0| + max g' c, for a noise bounded by c
    if flow.speed_bound is not None:
        bound = float(jnp.max(jnp.abs(flow.df(path.times))) * np.abs(reference).max()
                      + jnp.max(flow.dg(path.times)) * flow.speed_bound)
    results["speed"] = {"max": float(max_speed.max()), "mean_max": float(mean_speed.max()),
                        "c": flow.speed_bound, "bound": bound}
    write_report(layout, "toy2d_metrics", results, files={"toy2d.png": functools.partial(
        _figure, reference=reference, samples=samples, trajectory=np.asarray(path.trajectory),
        times=np.asarray(path.times), max_speed=max_speed, mean_speed=mean_speed, results=results)})
    return results


def _figure(path, *, reference, samples, trajectory, times, max_speed, mean_speed, results) -> None:
    panels = 1 + len(samples) + 2
    fig, axes = subplots(panels, (3.2 * panels, 3.4))
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
    if results["speed"]["bound"] is not None:
        ax.axhline(results["speed"]["c"], color="k", ls="--", lw=0.8, label="c")
        ax.axhline(results["speed"]["bound"], color="r", ls=":", lw=0.8, label="bound")
    ax.set(xlabel="t", title="speed along trajectories")
    ax.legend(fontsize=6)
    save(fig, path)
