"""Quality against steps for the digits teacher and its distilled students.

The analogue of DistillKac's "FID vs NFE" figure on the embedded digits: for each
step count k, the teacher sampled with k steps of its own sampler and the student
distilled to k Euler steps, both from the same prior draws and labels, are scored
by the digits judge (FD-digits, an FID analogue, and class accuracy) and by their
RMS distance to the teacher's ``teacher_steps``-step endpoint. It also measures the
stability claim (Theorem 8): the RMS distance between each student's trajectory and
the fine teacher trajectory at every point of the student's grid, not only at the end,
and the speeds near the data end against the Brownian limit
(:mod:`kacjax.evaluation.velocity_profile`). ``report.md`` shows it all on one page.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from kacjax.evaluation import digits_figures, images, report_page, velocity_profile
from kacjax.evaluation.generator import Generator, load
from kacjax.evaluation.metrics import build_digits_judge
from kacjax.evaluation.sampling import check_guidance_sweep
from kacjax.evaluation.tables import markdown_table, write_csv
from kacjax.training import logs
from kacjax.training.rundir import SAMPLES_DIR, RunDir, has_checkpoint


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


OUTPUTS = ("nfe_report.md", "nfe_report.csv", "nfe_report.png", "stability.png", "velocity.png", "report.md")
_GRID = 100  # samples in each row's grid (10 per class) and in the velocity profile
_COLUMNS = ("model", "sampler", "steps", "w", "network_passes", "fd_digits", "accuracy", "rms_to_teacher_endpoint",
            "seconds_per_1000", "max_speed", "nonfinite")


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(a) - np.asarray(b)))))


def _fingerprint(config, layout: RunDir, checkpoints) -> dict:
    """What a report depends on: its checkpoints (directory, step) and the evaluation settings."""
    return {"checkpoints": [[os.path.relpath(g.directory, layout.root), g.step] for g in checkpoints],
            "evaluate": config.evaluate.to_dict(), "seed": config.seed}


def _cached(layout: RunDir, fingerprint: dict):
    """The saved report when it was made from the same checkpoints and settings, else None."""
    try:
        with open(layout.report("nfe_report.json")) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    outputs = [layout.report(n) for n in (*OUTPUTS, *report.get("grids", {}).values())]
    fresh = json.loads(json.dumps(fingerprint))  # tuples as lists, like the saved JSON
    return report if report.get("fingerprint") == fresh and all(os.path.exists(p) for p in outputs) else None


def nfe_report(config, workdir: str) -> dict:
    """Writes ``workdir/nfe_report.{json,md,csv,png}``, ``stability.png``, ``velocity.png``, a sample
    grid per row under ``samples/`` and the page ``report.md``; returns the report.

    The evaluation settings (sample count, step counts, the optional guidance sweep of
    the teacher at its own steps) come from ``config.evaluate``; how each model is
    sampled comes from its saved provenance: the teacher's own sampler, and the guidance
    weight and inner sampler the students of the chain ``config.distill.name`` were
    distilled with (the teacher's configured ``w`` when there is no student). Each row
    also records the generation's wall time per 1,000 samples, the largest velocity
    component met and the non-finite samples. A report made from the same checkpoints
    and settings is reused.
    """
    check_config(config)
    ev = config.evaluate
    layout = RunDir(workdir)
    teacher = load(workdir, stage=0)
    chain = [Generator.load(p) for p in layout.stages(config.distill.name) if has_checkpoint(p)]
    fingerprint = _fingerprint(config, layout, [teacher, *chain])
    cached = _cached(layout, fingerprint)
    if cached is not None:
        logs.info(f"evaluate: {layout.report('report.md')} is up to date with the checkpoints; reusing it")
        return cached
    students = {gen.default_steps: gen for gen in chain}
    first = min(students.values(), key=lambda g: g.provenance["stage"], default=None)
    w = first.sampling.w if first else teacher.sampling.w
    inner = first.provenance["inner_method"] if first else teacher.sampling.method
    num = ev.num_samples
    labels = np.arange(num, dtype=np.int32) % teacher.num_classes
    key = jax.random.PRNGKey(config.seed + 11)
    method = teacher.default_method
    judge = build_digits_judge()
    total = 1 + len(ev.steps) + sum(k in students for k in ev.steps) + len(ev.sweep_samplers) * len(ev.guidance_sweep)
    logs.info(f"evaluate: {total} rows of {num} samples; teacher reference {inner} {ev.teacher_steps} steps, w={w:g}")
    done = []

    def solve(gen, **kw):
        logs.info(f"evaluate: row {len(done) + 1}/{total}: {os.path.basename(gen.directory)} "
                  f"{kw.get('sampler') or gen.default_method} {kw.get('steps') or gen.default_steps} steps")
        return gen.solve(key, num, labels, track_speed=True, timed=True, **kw)

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
        done.append(x[:_GRID])
        return r

    fine = solve(teacher, steps=ev.teacher_steps, sampler=inner, w=w, return_trajectory=True)
    reference = np.clip(np.asarray(fine.x), -1, 1)
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
    grids = {}
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(layout.report(os.path.join(SAMPLES_DIR, "x"))), exist_ok=True)
        for r, x in zip(rows, done):
            name = os.path.join(SAMPLES_DIR, f"report_{_slug(r)}.png")
            images.save_png(layout.report(name), x, cols=teacher.num_classes, scale=4)
            grids[f"{r['model']}, {r['sampler']} {r['steps']} steps"] = name
    sweep = [row("teacher (sweep)", m, teacher.sampling.steps, ws,
                 solve(teacher, steps=teacher.sampling.steps, sampler=m, w=float(ws)))
             for m in ev.sweep_samplers for ws in ev.guidance_sweep]
    logs.info("evaluate: velocity near the data end (exact Kac draws; the teacher along its path)")
    flow = teacher.flow
    clocks = np.geomspace(1e-3, float(flow.g(flow.T)), 40)
    noise_key = jax.random.PRNGKey(config.seed + 12)
    velocity = {"noise": velocity_profile.noise_speeds(noise_key, clocks, flow),
                "teacher": velocity_profile.teacher_speeds(teacher, np.asarray(fine.trajectory)[:, :_GRID],
                                                           fine.times, labels[:_GRID], w)}
    report = {"num_samples": num, "w": float(w), "rows": rows, "sweep": sweep, "stability": stability,
              "velocity": velocity, "grids": grids, "fingerprint": fingerprint}
    if jax.process_index() == 0:
        with open(layout.report("nfe_report.json"), "w") as f:
            json.dump(report, f, indent=2)
        table = markdown_table(rows + sweep, _COLUMNS)
        with open(layout.report("nfe_report.md"), "w") as f:
            f.write(table)
        write_csv(layout.report("nfe_report.csv"), rows + sweep, _COLUMNS)
        digits_figures.quality(layout.report("nfe_report.png"), rows, sweep)
        digits_figures.stability(layout.report("stability.png"), stability)
        digits_figures.velocity(layout.report("velocity.png"), velocity)
        report_page.write(layout.report("report.md"), config, report, table)
        logs.info(f"wrote {layout.report('report.md')}: the page with every table and figure of this report")
    return report


def _slug(r: dict) -> str:
    model = "teacher" if r["model"] == "teacher" else f"stage{r['model'].split()[-1].rstrip(')')}"
    return f"{model}_{r['sampler']}{r['steps']}"
