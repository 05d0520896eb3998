"""Does finite speed help? One experiment run per noise family and training seed, side by side.

Each run is the experiment itself (same network, budget, chain and evaluation) in
``workdir/compare_noise/<family>_seed<k>/`` with ``seed = k`` and the family's noise. Families
(``compare_noise.families``): ``kac`` (a 1-D Kac process per coordinate), ``flight2``/``flight4``
(random flights), ``line<d>`` (line-Kac over groups of ``d``), ``brownian`` and ``linear`` (the
Gaussian baselines). Every family keeps the config's ``a`` and ``T``; its ``c`` is scaled so that
the per-coordinate noise variance at ``t = T`` equals the config's own flow's (every family's
variance is proportional to ``c^2``, :meth:`~kacjax.core.flow.KacFlow.variance`), so the priors
have the same scale. The runs are made by the ``compare_noise`` mode
(:mod:`kacjax.cli.compare_noise`); this module plans them and gathers their reports into
``noise_report.{json,md,csv,png}``: per family the mean and sample standard deviation over seeds
of every metric, and a figure of quality against steps with the seed spread.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
import re

import numpy as np

from kacjax.core.flow import KacFlow
from kacjax.evaluation.artifacts import save, subplots, write_report
from kacjax.evaluation.reports.subject import Subject
from kacjax.training.rundir import RunDir

NAME = "noise_report"
RUNS_DIR = "compare_noise"
RUN_MODES = ("train", "distill", "evaluate")
_FAMILY = re.compile(r"^(?:(kac|brownian|linear)|flight(\d+)|line(\d+))$")
_NEAR_DATA = 0.1  # "near the data end": the path's states with t <= 0.1 T


def family_noise(name) -> tuple[str, int]:
    """``(flow.noise_process, flow.noise_dim)`` of a family name: ``kac``, ``flight<d>``, ``line<d>``,
    ``brownian`` or ``linear``."""
    m = _FAMILY.match(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"bad config: compare_noise.families: unknown family {name!r}; use kac, flight2, flight4, "
                         "line<d>, brownian or linear")
    if m.group(1):
        return m.group(1), 1
    return ("kac", int(m.group(2))) if m.group(2) else ("line", int(m.group(3)))


def matched_flow(flow: KacFlow, family: str) -> KacFlow:
    """``flow`` with ``family``'s noise and ``c`` scaled so the per-coordinate variance at ``t = T`` is ``flow``'s."""
    process, dim = family_noise(family)
    trial = dataclasses.replace(flow, noise_process=process, noise_dim=dim)
    ratio = float(flow.variance(flow.horizon)) / float(trial.variance(trial.horizon))
    return dataclasses.replace(trial, c=flow.c * math.sqrt(ratio))


@dataclasses.dataclass(frozen=True)
class NoiseComparisonSettings:
    """The only place the comparison reads its config: ``compare_noise.families`` and ``.seeds``, the
    base flow, the dataset, and the modes each run takes (those of ``RUN_MODES`` in
    ``compare_noise.modes``)."""

    families: tuple
    seeds: tuple
    modes: tuple
    flow: KacFlow
    dataset: str

    @classmethod
    def from_config(cls, config) -> NoiseComparisonSettings:
        cmp = config.compare_noise
        return cls(families=tuple(cmp.families), seeds=tuple(cmp.seeds), modes=tuple(cmp.modes),
                   flow=KacFlow.from_config(config.flow), dataset=config.data.name)


def check(config) -> NoiseComparisonSettings:
    """Raises ValueError for a comparison this module cannot plan or gather; returns its settings."""
    s = NoiseComparisonSettings.from_config(config)
    if s.dataset not in METRICS:
        raise ValueError(f"bad config: compare_noise gathers the reports of {sorted(METRICS)}, not {s.dataset!r}")
    if not s.families or len(set(s.families)) != len(s.families):
        raise ValueError(f"bad config: compare_noise.families must be distinct and not empty, got {s.families}")
    for family in s.families:
        family_noise(family)
    if len(s.seeds) < 1 or len(set(s.seeds)) != len(s.seeds) or not all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in s.seeds):
        raise ValueError(f"bad config: compare_noise.seeds must be distinct integers >= 0, got {s.seeds}")
    if not {"train", "evaluate"} <= set(s.modes) <= set(RUN_MODES):
        raise ValueError(f"bad config: compare_noise.modes must hold train and evaluate, within {RUN_MODES}, "
                         f"got {s.modes}")
    return s


def plan(config) -> list:
    """``[(family, seed, run config)]``: every run of the comparison, each its own experiment."""
    s = NoiseComparisonSettings.from_config(config)
    runs = []
    for family in s.families:
        flow = matched_flow(s.flow, family)
        for seed in s.seeds:
            cfg = copy.deepcopy(config)
            with cfg.unlocked():
                cfg.seed = seed
                cfg.pipeline = tuple(m for m in RUN_MODES if m in s.modes)
                cfg.flow.update(noise_process=flow.noise_process, noise_dim=flow.noise_dim, c=flow.c)
            runs.append((family, seed, cfg))
    return runs


def run_dir(workdir: str, family: str, seed: int) -> str:
    """The workdir of one run of the comparison."""
    return os.path.join(workdir, RUNS_DIR, f"{family}_seed{seed}")


def _read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _last_loss(run: str) -> float:
    """The teacher's loss, averaged over its last logged interval (``teacher/metrics.jsonl``)."""
    with open(os.path.join(RunDir(run).teacher, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return float([r for r in rows if "loss" in r][-1]["loss"])


def _near_data(times, values) -> float:
    """The largest of ``values`` at the path's states with ``t <= 0.1 T`` (``times`` run from ``T`` to 0)."""
    times = np.asarray(times, float)
    return float(np.max(np.asarray(values, float)[times <= _NEAR_DATA * times[0]]))


def digits_metrics(run: str) -> dict:
    """One digits run's numbers: FD-digits and accuracy of the teacher at every step count and of every
    student, the largest RMS distance of each student's path to the teacher's (Theorem 8), the teacher's
    largest velocity near the data end, the noise's largest exact velocity at the smallest clock, the loss."""
    report = _read(RunDir(run).report("nfe_report.json"))
    out = {}
    for row in report["rows"]:
        who = "student" if Subject.of_row(row).is_student else "teacher"
        out[f"{who}_fd_{row['steps']}"] = row["fd_digits"]
        out[f"{who}_accuracy_{row['steps']}"] = row["accuracy"]
    for steps, path in report["stability"].items():
        out[f"stability_max_{steps}"] = max(path["rms_student_vs_teacher"])
    teacher = report["velocity"]["teacher"]
    out["teacher_speed_near_data"] = _near_data(teacher["t"], teacher["max"])
    out["noise_speed_at_smallest_clock"] = report["velocity"]["noise"]["kac_max"][0]
    out["teacher_loss"] = _last_loss(run)
    return out


def toy2d_metrics(run: str) -> dict:
    """One toy2d run's numbers: energy distance and sliced W2 with Euler at each of ``few_steps`` and with
    each sampler at ``steps`` (by network passes), the largest speed along the paths, the loss."""
    report = _read(RunDir(run).report("toy2d_metrics.json"))
    out = {}
    for k, scores in report["few_steps"].items():
        out[f"euler_energy_distance_{k}"] = scores["energy_distance"]
        out[f"euler_sliced_wasserstein_{k}"] = scores["sliced_wasserstein"]
    for method, scores in report["samplers"].items():
        out[f"{method}_energy_distance_{scores['nfe']}"] = scores["energy_distance"]
        out[f"{method}_sliced_wasserstein_{scores['nfe']}"] = scores["sliced_wasserstein"]
    out["max_speed"] = report["speed"]["max"]
    out["teacher_loss"] = _last_loss(run)
    return out


METRICS = {"digits": digits_metrics, "toy2d": toy2d_metrics}
# per dataset: the Markdown table's metrics, and the figure's (label, metric prefix) curves over steps
_TABLE = {
    "digits": ("teacher_fd_1", "teacher_fd_2", "teacher_fd_4", "teacher_fd_20", "teacher_fd_100", "student_fd_20",
               "student_fd_4", "student_fd_2", "student_fd_1", "student_accuracy_1", "stability_max_1",
               "teacher_speed_near_data", "teacher_loss"),
    "toy2d": ("euler_energy_distance_1", "euler_energy_distance_2", "euler_energy_distance_4",
              "ab2_energy_distance_100", "euler_sliced_wasserstein_1", "ab2_sliced_wasserstein_100", "max_speed",
              "teacher_loss"),
}
_CURVES = {"digits": (("teacher", "teacher_fd_"), ("student", "student_fd_")),
           "toy2d": (("Euler", "euler_energy_distance_"),)}


def _spread(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def gather(config, workdir: str) -> dict:
    """Reads every run's report and writes ``noise_report.{json,md,csv,png}`` in ``workdir``; returns the report."""
    s = NoiseComparisonSettings.from_config(config)
    metrics_of = METRICS[s.dataset]
    families = {}
    for family in s.families:
        flow = matched_flow(s.flow, family)
        runs = {seed: metrics_of(run_dir(workdir, family, seed)) for seed in s.seeds}
        names = [n for n in runs[s.seeds[0]] if all(n in r for r in runs.values())]
        stats = {n: _spread([r[n] for r in runs.values()]) for n in names}
        families[family] = {
            "noise": flow.noise_name, "noise_process": flow.noise_process, "noise_dim": flow.noise_dim,
            "a": flow.a, "c": flow.c, "T": flow.T, "variance_at_T": float(flow.variance(flow.horizon)),
            "runs": {str(k): v for k, v in runs.items()},
            "mean": {n: m for n, (m, _) in stats.items()}, "std": {n: sd for n, (_, sd) in stats.items()},
        }
    report = {"dataset": s.dataset, "seeds": list(s.seeds), "families": families}
    columns = ("family", "noise", "c", *[n for n in _TABLE[s.dataset] if n in families[s.families[0]]["mean"]])
    rows = [{"family": f, "noise": v["noise"], "c": round(v["c"], 4),
             **{n: f"{v['mean'][n]:.4g} ± {v['std'][n]:.2g}" for n in columns[3:]}} for f, v in families.items()]
    write_report(RunDir(workdir), NAME, report, table=(rows, columns),
                 files={f"{NAME}.png": functools.partial(_figure, report=report)})
    return report


def _figure(path: str, *, report: dict) -> None:
    """Quality against steps per family, mean over seeds with the standard deviation as error bars."""
    curves = _CURVES[report["dataset"]]
    fig, axes = subplots(len(curves), (5.2 * len(curves), 3.8), squeeze=False)
    for ax, (label, prefix) in zip(axes[0], curves):
        for i, (family, v) in enumerate(report["families"].items()):
            pts = sorted((int(n[len(prefix):]), v["mean"][n], v["std"][n]) for n in v["mean"] if n.startswith(prefix))
            steps, mean, std = zip(*pts)
            ax.errorbar(steps, mean, yerr=std, fmt="o-", ms=3, capsize=2, color=f"C{i}", label=family)
        ax.set_xscale("log")
        ax.set_xticks(steps, [str(k) for k in steps])
        ax.set(yscale="log", xlabel="steps",
               ylabel=prefix.rstrip("_").replace("_", " "),
               title=f"{label}, mean ± sd over {len(report['seeds'])} seeds")
        ax.legend(fontsize=7)
    save(fig, path)
