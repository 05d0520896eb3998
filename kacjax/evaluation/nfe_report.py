"""Quality against steps for the digits teacher and its distilled students.

The analogue of DistillKac's "FID vs NFE" figure on the embedded digits: for each
step count k, the teacher sampled with k steps of its own sampler and the student
distilled to k Euler steps, both from the same prior draws and labels, are scored
by the digits judge (FD-digits, an FID analogue, and class accuracy) and by their
RMS distance to the teacher's ``teacher_steps``-step endpoint. It also measures the
stability claim (Theorem 8): the RMS distance between each student's trajectory and
the fine teacher trajectory at every point of the student's grid, not only at the end.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from kacjax.evaluation.generator import Generator, load
from kacjax.evaluation.metrics import build_digits_judge
from kacjax.training import logs
from kacjax.training.rundir import RunDir, has_checkpoint


def check_config(config) -> None:
    """Raises ValueError for ``evaluate`` values this report cannot use."""
    ev = config.evaluate
    if not (isinstance(ev.num_samples, int) and ev.num_samples >= 2):
        raise ValueError(f"bad config: evaluate.num_samples must be an integer >= 2, got {ev.num_samples!r}")
    if not (isinstance(ev.teacher_steps, int) and ev.teacher_steps >= 1):
        raise ValueError(f"bad config: evaluate.teacher_steps must be an integer >= 1, got {ev.teacher_steps!r}")
    for k in ev.steps:
        if not (isinstance(k, int) and k >= 1 and ev.teacher_steps % k == 0):
            raise ValueError(f"bad config: every evaluate.steps entry must divide evaluate.teacher_steps="
                             f"{ev.teacher_steps} (the stability check compares on the student grid), got {k!r}")


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(a) - np.asarray(b)))))


def nfe_report(config, workdir: str) -> dict:
    """Writes ``workdir/nfe_report.{json,md,png}`` and returns the report.

    The evaluation settings (sample count, step counts) come from ``config.evaluate``;
    how each model is sampled comes from its saved provenance: the teacher's own
    sampler, and the guidance weight and inner sampler the students were distilled with
    (the teacher's configured ``w`` when there is no student).
    """
    check_config(config)
    ev = config.evaluate
    layout = RunDir(workdir)
    judge = build_digits_judge()
    teacher = load(workdir, stage=0)
    students = {gen.default_steps: gen for gen in (Generator.load(p) for p in layout.stages() if has_checkpoint(p))}
    first = min(students.values(), key=lambda g: g.provenance["stage"], default=None)
    w = first.sampling.w if first else teacher.sampling.w
    inner = first.provenance["inner_method"] if first else teacher.sampling.method
    num = ev.num_samples
    labels = np.arange(num, dtype=np.int32) % teacher.num_classes
    key = jax.random.PRNGKey(config.seed + 11)
    method = teacher.default_method
    logs.info(f"evaluate: {num} samples per row; teacher reference {inner} {ev.teacher_steps} steps, w={w:g}")
    fine = teacher.solve(key, num, labels, steps=ev.teacher_steps, sampler=inner, w=w, return_trajectory=True)
    reference = np.clip(np.asarray(fine.x), -1, 1)

    def row(name, sampler, steps, generated):
        x = np.clip(np.asarray(generated.x), -1, 1)
        r = {"model": name, "sampler": sampler, "steps": steps, "network_passes": generated.network_passes,
             "fd_digits": judge.frechet(x), "accuracy": judge.accuracy(x, labels),
             "rms_to_teacher_endpoint": _rms(x, reference)}
        logs.info(f"evaluate: {name} {sampler} {steps} steps ({r['network_passes']} passes): "
                  f"FD-digits {r['fd_digits']:.3f}, accuracy {r['accuracy']:.3f}")
        return r

    rows = [row("teacher", inner, ev.teacher_steps, fine)]
    stability = {}
    for k in ev.steps:
        rows.append(row("teacher", method, k, teacher.solve(key, num, labels, steps=k, sampler=method, w=w)))
        if k in students:
            gen = students[k]
            path = gen.solve(key, num, labels, return_trajectory=True)
            rows.append(row(f"student (stage {gen.provenance['stage']})", gen.default_method, k, path))
            teacher_on_grid = np.asarray(fine.trajectory)[::ev.teacher_steps // k]
            stability[k] = {
                "times": np.asarray(path.times).tolist(),
                "rms_student_vs_teacher": [_rms(a, b) for a, b in zip(np.asarray(path.trajectory), teacher_on_grid)],
            }
    report = {"num_samples": num, "w": float(w), "rows": rows, "stability": stability}
    if jax.process_index() == 0:
        with open(layout.report("nfe_report.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(layout.report("nfe_report.md"), "w") as f:
            f.write(_table(rows))
        _figure(layout.report("nfe_report.png"), rows, stability)
        logs.info(f"wrote {layout.report('nfe_report.md')} and .json, .png")
    return report


def _table(rows) -> str:
    lines = ["| model | sampler | steps | network passes | FD-digits | accuracy | RMS to teacher endpoint |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['sampler']} | {r['steps']} | {r['network_passes']} | "
                     f"{r['fd_digits']:.3f} | {r['accuracy']:.3f} | {r['rms_to_teacher_endpoint']:.4f} |")
    return "\n".join(lines) + "\n"


def _figure(path, rows, stability) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, style in (("teacher", "o-"), ("student", "s-")):
        pts = sorted((r["steps"], r) for r in rows if r["model"].startswith(name))
        if name == "teacher":
            pts = pts[:-1] if len(pts) > 1 else pts  # the fine reference is drawn as a line
        xs = [p[0] for p in pts]
        axes[0].plot(xs, [p[1]["fd_digits"] for p in pts], style, label=name)
        axes[1].plot(xs, [p[1]["accuracy"] for p in pts], style, label=name)
    ref = rows[0]
    axes[0].axhline(ref["fd_digits"], color="k", ls="--", lw=0.8, label=f"teacher, {ref['steps']} steps")
    axes[1].axhline(ref["accuracy"], color="k", ls="--", lw=0.8, label=f"teacher, {ref['steps']} steps")
    for ax, title in ((axes[0], "FD-digits (lower is better)"), (axes[1], "class accuracy")):
        ax.set(xscale="log", xlabel="sampling steps", title=title)
        ax.legend(fontsize=7)
    for k, s in sorted(stability.items()):
        axes[2].plot(s["times"], s["rms_student_vs_teacher"], "o-", label=f"{k}-step student")
    axes[2].set(xlabel="t (sampling runs from T to 0)", title="RMS(student - teacher) along the path")
    axes[2].invert_xaxis()
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
