"""The digits report: quality against steps for the digits teacher and its distilled students.

The analogue of DistillKac's "FID vs NFE" figure on the embedded digits: for each
step count k, the teacher sampled with k steps of its own sampler and the student
distilled to k Euler steps, both from the same prior draws and labels, are scored
by the digits judge (FD-digits, an FID analogue, and class accuracy) and by their
RMS distance to the teacher's ``teacher_steps``-step endpoint. It also measures the
stability claim (Theorem 8): the RMS distance between each student's trajectory and
the fine teacher trajectory at every point of the student's grid, not only at the end,
and the speeds near the data end against the Brownian limit
(:mod:`kacjax.evaluation.reports.velocity_profile`). ``report.md`` shows it all on one page.
Files: ``nfe_report.{json,md,csv,png}``, ``stability.png``, ``velocity.png``, ``report.md`` and
one sample grid per row under ``samples/`` (docs/rundir.md).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Optional

import jax
import numpy as np

from kacjax.evaluation import images
from kacjax.evaluation.artifacts import markdown_table, write_report
from kacjax.evaluation.generator import Generator
from kacjax.evaluation.metrics.digits_judge import DigitsJudge, build_digits_judge
from kacjax.evaluation.reports import digits_figures, digits_page, velocity_profile
from kacjax.evaluation.reports.subject import Subject
from kacjax.evaluation.reports.sweep import check_sweep, sweep_points
from kacjax.evaluation.sampling import Generated
from kacjax.runtime import logs
from kacjax.training.rundir import SAMPLES_DIR, RunDir, has_checkpoint

NAME = "nfe_report"
OUTPUTS = (f"{NAME}.md", f"{NAME}.csv", f"{NAME}.png", "stability.png", "velocity.png", "report.md")
_GRID = 100  # samples in each row's grid (10 per class) and in the velocity profile
_COLUMNS = ("model", "sampler", "steps", "w", "network_passes", "fd_digits", "accuracy", "rms_to_teacher_endpoint",
            "images_per_s", "max_speed", "nonfinite")


@dataclasses.dataclass(frozen=True)
class DigitsSettings:
    """The only place the digits report reads its config.

    Attributes:
      num_samples: samples per row, the same prior draws and labels (cycling 0-9) for every row.
      steps: the step counts at which the teacher and the student of that grid are compared.
      teacher_steps: steps of the fine teacher every row is measured against.
      guidance_sweep, sweep_samplers: weights and samplers of the teacher's sweep at its own steps.
      seed: draws from ``seed + 11`` (samples) and ``seed + 12`` (noise speeds).
      chain: ``distill.name``, the chain whose students are scored.
      evaluate: the whole ``evaluate`` section, recorded in the report's fingerprint.
      page: what ``report.md`` states about the run.
    """

    num_samples: int
    steps: tuple
    teacher_steps: int
    guidance_sweep: tuple
    sweep_samplers: tuple
    seed: int
    chain: str
    evaluate: dict
    page: digits_page.PageFacts

    @classmethod
    def from_config(cls, config) -> DigitsSettings:
        ev = config.evaluate
        return cls(num_samples=ev.num_samples, steps=tuple(ev.steps), teacher_steps=ev.teacher_steps,
                   guidance_sweep=tuple(ev.guidance_sweep), sweep_samplers=tuple(ev.sweep_samplers),
                   seed=config.seed, chain=config.distill.name, evaluate=ev.to_dict(),
                   page=digits_page.PageFacts.from_config(config))


def check(config, mesh) -> None:
    """Raises ValueError for ``evaluate`` values this report cannot use (``mesh``: unused, the
    digits are generated and judged on one device)."""
    del mesh
    s = DigitsSettings.from_config(config)
    if not (isinstance(s.num_samples, int) and s.num_samples >= 2):
        raise ValueError(f"bad config: evaluate.num_samples must be an integer >= 2, got {s.num_samples!r}")
    if not (isinstance(s.teacher_steps, int) and s.teacher_steps >= 1):
        raise ValueError(f"bad config: evaluate.teacher_steps must be an integer >= 1, got {s.teacher_steps!r}")
    for k in s.steps:
        if not (isinstance(k, int) and k >= 1 and s.teacher_steps % k == 0):
            raise ValueError(f"bad config: every evaluate.steps entry must divide evaluate.teacher_steps="
                             f"{s.teacher_steps} (the stability check compares on the student grid), got {k!r}")
    check_sweep(s.guidance_sweep, s.sweep_samplers)


@dataclasses.dataclass(frozen=True)
class Models:
    """The teacher and the chain's students, with the guidance ``w`` and ``inner`` sampler of the
    fine reference: those the first student was distilled with (the teacher's own without one)."""

    teacher: Generator
    chain: tuple
    w: float
    inner: str

    @property
    def students(self) -> dict:
        """``{student steps: Generator}``."""
        return {gen.default_steps: gen for gen in self.chain}


def load_models(layout: RunDir, chain: str) -> Models:
    """The teacher of ``layout`` and every stage of ``chain`` that has a checkpoint."""
    teacher = Generator.load(layout.resolve(0))
    stages = tuple(Generator.load(p) for p in layout.stages(chain) if has_checkpoint(p))
    first = min(stages, key=lambda g: g.provenance["stage"], default=None)
    if first is None:
        return Models(teacher, stages, teacher.sampling.w, teacher.sampling.method)
    return Models(teacher, stages, first.sampling.w, first.provenance["inner_method"])


def _fingerprint(s: DigitsSettings, layout: RunDir, models: Models) -> dict:
    """What a report depends on: its checkpoints (directory, step) and the evaluation settings."""
    checkpoints = (models.teacher, *models.chain)
    return {"checkpoints": [[os.path.relpath(g.directory, layout.root), g.step] for g in checkpoints],
            "evaluate": s.evaluate, "seed": s.seed}


def _cached(layout: RunDir, fingerprint: dict) -> Optional[dict]:
    """The saved report when it was made from the same checkpoints and settings, else None."""
    try:
        with open(layout.report(f"{NAME}.json")) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    outputs = [layout.report(n) for n in (*OUTPUTS, *report.get("grids", {}).values())]
    fresh = json.loads(json.dumps(fingerprint))  # tuples as lists, like the saved JSON
    return report if report.get("fingerprint") == fresh and all(os.path.exists(p) for p in outputs) else None


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """One row: ``gen`` solved with ``solve`` (keyword arguments of :meth:`Generator.solve`; none for a
    student, which runs on its own grid), recorded as its ``subject``, ``sampler``, ``steps`` and ``w``."""

    subject: Subject
    gen: Generator
    sampler: str
    steps: int
    w: float
    solve: dict
    trajectory: bool = False


def plan_rows(models: Models, s: DigitsSettings) -> tuple[list, list]:
    """``(main rows, sweep rows)``: the fine reference first, then per step count the teacher and the
    student of that grid (when the chain has one); the sweep of the teacher at its own steps."""
    teacher, w, method = models.teacher, models.w, models.teacher.default_method
    main = [RowPlan(Subject(), teacher, models.inner, s.teacher_steps, w,
                    dict(steps=s.teacher_steps, sampler=models.inner, w=w), trajectory=True)]
    students = models.students
    for k in s.steps:
        main.append(RowPlan(Subject(), teacher, method, k, w, dict(steps=k, sampler=method, w=w)))
        if k in students:
            gen = students[k]
            main.append(RowPlan(Subject.of(gen), gen, gen.default_method, k, gen.sampling.w, {}, trajectory=True))
    steps = teacher.sampling.steps
    sweep = [RowPlan(Subject(sweep=True), teacher, m, steps, ws, dict(steps=steps, sampler=m, w=float(ws)))
             for m, ws in sweep_points(s.guidance_sweep, s.sweep_samplers)]
    return main, sweep


def solve(plan: RowPlan, key, labels, position: str) -> Generated:
    """``plan``'s samples from the prior draws of ``key`` (one per label), timed, with their speeds."""
    logs.info(f"evaluate: row {position}: {os.path.basename(plan.gen.directory)} {plan.sampler} {plan.steps} steps")
    return plan.gen.solve(key, len(labels), labels, track_speed=True, timed=True,
                          return_trajectory=plan.trajectory, **plan.solve)


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(a) - np.asarray(b)))))


def score(judge: DigitsJudge, plan: RowPlan, generated: Generated, labels, reference) -> tuple[dict, np.ndarray]:
    """The row of ``generated`` and its first :data:`_GRID` samples (clipped to ``[-1, 1]``)."""
    raw = np.asarray(generated.x)
    x = np.clip(raw, -1, 1)
    speed = np.asarray(generated.max_speed)
    nonfinite = ~np.all(np.isfinite(raw.reshape(len(labels), -1)), axis=1) | ~np.isfinite(speed)
    row = {**plan.subject.fields(), "sampler": plan.sampler, "steps": plan.steps, "w": float(plan.w),
           "network_passes": generated.network_passes, "fd_digits": judge.frechet(x),
           "accuracy": judge.accuracy(x, labels), "rms_to_teacher_endpoint": _rms(x, reference),
           "images_per_s": len(labels) / generated.seconds, "max_speed": float(np.max(speed)),
           "nonfinite": int(nonfinite.sum())}
    logs.info(f"evaluate: {plan.subject.label} {plan.sampler} {plan.steps} steps w={plan.w:g} ({row['network_passes']} "
              f"passes): FD-digits {row['fd_digits']:.3f}, accuracy {row['accuracy']:.3f}")
    return row, x[:_GRID]


def speedup(rows: list) -> Optional[dict]:
    """The fastest student's speed over the reference teacher's (``rows[0]``), both per sample
    with compiling excluded, with their network passes; None when the chain has no student."""
    students = [r for r in rows[1:] if Subject.of_row(r).is_student]
    if not students:
        return None
    fastest = min(students, key=lambda r: r["steps"])
    teacher = rows[0]
    return {"student_steps": fastest["steps"], "teacher_steps": teacher["steps"],
            "student_passes": fastest["network_passes"], "teacher_passes": teacher["network_passes"],
            "student_images_per_s": fastest["images_per_s"], "teacher_images_per_s": teacher["images_per_s"],
            "speedup": fastest["images_per_s"] / teacher["images_per_s"]}


def stability(path: Generated, fine: Generated, stride: int) -> dict:
    """RMS distance between a student's ``path`` and the ``fine`` teacher's at every point of the student's
    grid, every ``stride``-th point of the fine one."""
    teacher_on_grid = np.asarray(fine.trajectory)[::stride]
    student_path = np.asarray(path.trajectory)
    if len(teacher_on_grid) != len(student_path) or not np.allclose(np.asarray(fine.times)[::stride], path.times):
        raise ValueError(f"the student's grid ({len(student_path)} points) is not every {stride}-th point of the "
                         f"teacher's ({len(np.asarray(fine.trajectory))})")
    return {"times": np.asarray(path.times).tolist(),
            "rms_student_vs_teacher": [_rms(a, b) for a, b in zip(student_path, teacher_on_grid)]}


def velocity(models: Models, fine: Generated, labels, seed: int) -> dict:
    """Speeds near the data end: the exact noise's, and the teacher's along the fine path (first rows)."""
    flow = models.teacher.flow
    logs.info(f"evaluate: velocity near the data end (exact {flow.noise_name} draws; the teacher along its path)")
    clocks = np.geomspace(1e-3, float(flow.g(flow.T)), 40)
    return {"noise": velocity_profile.noise_speeds(jax.random.PRNGKey(seed + 12), clocks, flow),
            "teacher": velocity_profile.teacher_speeds(models.teacher, np.asarray(fine.trajectory)[:, :_GRID],
                                                       fine.times, labels[:_GRID], models.w)}


def run(config, workdir: str) -> dict:
    """Writes the report's files in ``workdir`` (see the module) and returns the report.

    The evaluation settings come from ``config.evaluate``; how each model is sampled comes
    from its saved provenance: the teacher's own sampler, and the guidance weight and inner
    sampler the students of the chain ``config.distill.name`` were distilled with (the
    teacher's configured ``w`` when there is no student). Each row also records the
    generation's speed (images/s, compiling excluded), the largest velocity
    component met and the non-finite samples; ``speedup`` compares the fewest-step student with
    the reference teacher. A report made from the same checkpoints and settings is reused.
    """
    s = DigitsSettings.from_config(config)
    layout = RunDir(workdir)
    models = load_models(layout, s.chain)
    fingerprint = _fingerprint(s, layout, models)
    cached = _cached(layout, fingerprint)
    if cached is not None:
        logs.info(f"evaluate: {layout.report('report.md')} is up to date with the checkpoints; reusing it")
        return cached
    main, sweep_plans = plan_rows(models, s)
    total = len(main) + len(sweep_plans)
    logs.info(f"evaluate: {total} rows of {s.num_samples} samples; teacher reference {models.inner} "
              f"{s.teacher_steps} steps, w={models.w:g}")
    judge = build_digits_judge()
    labels = np.arange(s.num_samples, dtype=np.int32) % models.teacher.num_classes
    key = jax.random.PRNGKey(s.seed + 11)
    fine = solve(main[0], key, labels, f"1/{total}")
    reference = np.clip(np.asarray(fine.x), -1, 1)
    rows, grids, paths, stability_rows = [], {}, {}, {}
    for i, plan in enumerate(main):
        generated = fine if i == 0 else solve(plan, key, labels, f"{i + 1}/{total}")
        row, grid = score(judge, plan, generated, labels, reference)
        rows.append(row)
        name = os.path.join(SAMPLES_DIR, f"report_{plan.subject.slug}_{plan.sampler}{plan.steps}.png")
        grids[f"{row['model']}, {row['sampler']} {row['steps']} steps"] = name
        paths[name] = functools.partial(images.save_png, images=grid, cols=models.teacher.num_classes, scale=4)
        if i > 0 and plan.trajectory:
            stability_rows[plan.steps] = stability(generated, fine, s.teacher_steps // plan.steps)
    sweep = [score(judge, plan, solve(plan, key, labels, f"{len(main) + j + 1}/{total}"), labels, reference)[0]
             for j, plan in enumerate(sweep_plans)]
    profile = velocity(models, fine, labels, s.seed)
    report = {"num_samples": s.num_samples, "w": float(models.w), "rows": rows, "sweep": sweep, "speedup": speedup(rows),
              "stability": stability_rows, "velocity": profile, "grids": grids, "fingerprint": fingerprint}
    table = markdown_table(rows + sweep, _COLUMNS)
    write_report(layout, NAME, report, table=(rows + sweep, _COLUMNS), files={
        **paths,
        f"{NAME}.png": functools.partial(digits_figures.quality, rows=rows, sweep=sweep),
        "stability.png": functools.partial(digits_figures.stability, stability_rows=stability_rows),
        "velocity.png": functools.partial(digits_figures.velocity, profile=profile),
        "report.md": functools.partial(digits_page.write, facts=s.page, report=report, table=table),
    })
    return report
