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
from kacjax.evaluation.sampling import check_guidance_sweep
from kacjax.evaluation.tables import markdown_table, write_csv
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
    check_guidance_sweep(ev.guidance_sweep, ev.sweep_samplers)


_COLUMNS = ("model", "sampler", "steps", "w", "network_passes", "fd_digits", "accuracy", "rms_to_teacher_endpoint",
            "seconds_per_1000", "max_speed", "nonfinite")


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(a) - np.asarray(b)))))


def nfe_report(config, workdir: str) -> dict:
    """Writes ``workdir/nfe_report.{json,md,csv,png}`` and returns the report.

    The evaluation settings (sample count, step counts, the optional guidance sweep of
    the teacher at its own steps) come from ``config.evaluate``; how each model is
    sampled comes from its saved provenance: the teacher's own sampler, and the guidance
    weight and inner sampler the students were distilled with (the teacher's configured
    ``w`` when there is no student). Each row also records the generation's wall time
    per 1,000 samples, the largest velocity component met and the non-finite samples.
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
    solve = lambda gen, **kw: gen.solve(key, num, labels, track_speed=True, timed=True, **kw)  # noqa: E731
    fine = solve(teacher, steps=ev.teacher_steps, sampler=inner, w=w, return_trajectory=True)
    reference = np.clip(np.asarray(fine.x), -1, 1)

    def row(name, sampler, steps, weight, generated):
        raw = np.asarray(generated.x)
        x = np.clip(raw, -1, 1)
        speed = np.asarray(generated.max_speed)
        nonfinite = ~np.all(np.isfinite(raw.reshape(num, -1)), axis=1) | ~np.isfinite(speed)
        r = {"model": name, "sampler": sampler, "steps": steps, "w": float(weight),
             "network_passes": generated.network_passes, "fd_digits": judge.frechet(x),
             "accuracy": judge.accuracy(x, labels), "rms_to_teacher_endpoint": _rms(x, reference),
             "seconds_per_1000": generated.seconds / num * 1000, "max_speed": float(np.max(speed)),
             "nonfinite": int(nonfinite.sum())}
        logs.info(f"evaluate: {name} {sampler} {steps} steps w={weight:g} ({r['network_passes']} passes): "
                  f"FD-digits {r['fd_digits']:.3f}, accuracy {r['accuracy']:.3f}")
        return r

    rows = [row("teacher", inner, ev.teacher_steps, w, fine)]
    stability = {}
    for k in ev.steps:
        rows.append(row("teacher", method, k, w, solve(teacher, steps=k, sampler=method, w=w)))
        if k in students:
            gen = students[k]
            path = solve(gen, return_trajectory=True)
            rows.append(row(f"student (stage {gen.provenance['stage']})", gen.default_method, k, gen.sampling.w, path))
            teacher_on_grid = np.asarray(fine.trajectory)[::ev.teacher_steps // k]
            stability[k] = {
                "times": np.asarray(path.times).tolist(),
                "rms_student_vs_teacher": [_rms(a, b) for a, b in zip(np.asarray(path.trajectory), teacher_on_grid)],
            }
    sweep = [row("teacher (sweep)", m, teacher.sampling.steps, ws,
                 solve(teacher, steps=teacher.sampling.steps, sampler=m, w=float(ws)))
             for m in ev.sweep_samplers for ws in ev.guidance_sweep]
    report = {"num_samples": num, "w": float(w), "rows": rows, "sweep": sweep, "stability": stability}
    if jax.process_index() == 0:
        with open(layout.report("nfe_report.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(layout.report("nfe_report.md"), "w") as f:
            f.write(markdown_table(rows + sweep, _COLUMNS))
        write_csv(layout.report("nfe_report.csv"), rows + sweep, _COLUMNS)
        _figure(layout.report("nfe_report.png"), rows, stability, sweep)
        logs.info(f"wrote {layout.report('nfe_report.md')} and .json, .csv, .png")
    return report


def _figure(path, rows, stability, sweep) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4 if sweep else 3, figsize=(17 if sweep else 13, 3.6))
    for name, style in (("teacher", "o-"), ("student", "s-")):
        pts = sorted(((r["steps"], r) for r in rows if r["model"].startswith(name)), key=lambda p: p[0])
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
    if sweep:
        for method in sorted({r["sampler"] for r in sweep}):
            pts = sorted((r["w"], r["fd_digits"]) for r in sweep if r["sampler"] == method)
            axes[3].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
        axes[3].set(xlabel="guidance weight w", title=f"FD-digits of the teacher, {sweep[0]['steps']} steps")
        axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
