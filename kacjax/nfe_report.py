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
import os

import jax
import numpy as np

from kacjax import api, samplers
from kacjax.distill import stage_dirs_in
from kacjax.metrics import build_digits_judge


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(a) - np.asarray(b)))))


def nfe_report(config, workdir: str) -> dict:
    """Writes ``workdir/nfe_report.{json,md,png}`` and returns the report."""
    ev, d = config.evaluate, config.distill
    judge = build_digits_judge()
    teacher = api.load(workdir, stage=0)
    students = {gen.default_steps: gen for gen in (api.Generator(p) for p in stage_dirs_in(workdir)
                                                   if api.has_checkpoint(p))}
    num = ev.num_samples
    labels = np.arange(num, dtype=np.int32) % teacher.num_classes
    key = jax.random.PRNGKey(config.seed + 11)
    method = teacher.default_method
    fine = teacher.solve(key, num, labels, steps=ev.teacher_steps, sampler=d.inner_method, w=d.w,
                         return_trajectory=True)
    reference = np.clip(np.asarray(fine.x), -1, 1)

    def score(gen, steps, **kw):
        x = np.clip(np.asarray(gen.solve(key, num, labels, steps=steps, **kw).x), -1, 1)
        return {"fd_digits": judge.frechet(x), "accuracy": judge.accuracy(x, labels),
                "rms_to_teacher_endpoint": _rms(x, reference)}

    rows = [{"model": "teacher", "sampler": d.inner_method, "steps": ev.teacher_steps,
             "network_passes": samplers.nfe(d.inner_method, ev.teacher_steps) * (2 if d.w else 1),
             **score(teacher, ev.teacher_steps, sampler=d.inner_method, w=d.w)}]
    stability = {}
    for k in ev.steps:
        rows.append({"model": "teacher", "sampler": method, "steps": k,
                     "network_passes": samplers.nfe(method, k) * (2 if d.w else 1),
                     **score(teacher, k, sampler=method, w=d.w)})
        if k in students:
            gen = students[k]
            rows.append({"model": f"student (stage {gen.meta['student']['stage']})", "sampler": "euler",
                         "steps": k, "network_passes": k, **score(gen, k)})
            path = gen.solve(key, num, labels, return_trajectory=True)
            stride = ev.teacher_steps // k
            teacher_on_grid = np.asarray(fine.trajectory)[::stride]
            stability[k] = {
                "times": np.asarray(path.times).tolist(),
                "rms_student_vs_teacher": [_rms(a, b) for a, b in zip(np.asarray(path.trajectory), teacher_on_grid)],
            }
    report = {"num_samples": num, "w": float(d.w), "rows": rows, "stability": stability}
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "nfe_report.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(os.path.join(workdir, "nfe_report.md"), "w") as f:
            f.write(_table(rows))
        _figure(os.path.join(workdir, "nfe_report.png"), rows, stability)
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
