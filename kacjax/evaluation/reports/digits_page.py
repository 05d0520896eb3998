"""``report.md``: the digits report's tables and figures on one Markdown page."""

from __future__ import annotations

import dataclasses
import os
import time


@dataclasses.dataclass(frozen=True)
class PageFacts:
    """What the page says about the run beyond the report's numbers (all read from the config).

    Attributes:
      teacher_train_steps: ``train.num_steps``; a, c: the flow's switching rate and speed.
      grids: the chain's step counts, ``(distill.teacher_steps, *distill.student_steps)``.
      inner_method, w, w_range: the chain's inner sampler and guidance (``distill``).
      reference_steps: the steps of the teacher the rows are compared to (``evaluate.teacher_steps``).
    """

    teacher_train_steps: int
    a: float
    c: float
    grids: tuple
    inner_method: str
    w: float
    w_range: tuple
    reference_steps: int

    @classmethod
    def from_config(cls, config) -> "PageFacts":
        d = config.distill
        return cls(teacher_train_steps=config.train.num_steps, a=config.flow.a, c=config.flow.c,
                   grids=(d.teacher_steps, *d.student_steps), inner_method=d.inner_method, w=d.w,
                   w_range=tuple(d.w_range), reference_steps=config.evaluate.teacher_steps)


def _chain(facts: PageFacts) -> str:
    grids = " → ".join(str(k) for k in facts.grids)
    guidance = (f"guidance-conditioned students, w ∈ [{facts.w_range[0]:g}, {facts.w_range[1]:g}] "
                f"(default {facts.w:g})" if facts.w_range else f"w = {facts.w:g} baked into the students")
    return f"{grids} steps, {facts.inner_method} inside each teacher step, {guidance}"


def _speedup(speedup) -> list:
    if speedup is None:
        return []
    s = speedup
    return ["", f"**Speedup.** The {s['student_steps']}-step student makes {s['student_images_per_s']:,.0f} images/s, "
            f"{s['speedup']:.0f}× the {s['teacher_steps']}-step teacher's {s['teacher_images_per_s']:,.1f} "
            f"({s['teacher_passes']} network passes per sample against {s['student_passes']})."]


def write(path: str, *, facts: PageFacts, report: dict, table: str) -> None:
    """Writes the page of ``report`` (the digits report's dict) with its Markdown ``table`` to ``path``;
    images are linked relative to its directory."""
    grids = "\n".join(f"| {label} | ![{label}]({name}) |" for label, name in report["grids"].items())
    noise = report["velocity"]["noise"]
    lines = [
        "# kacjax on digits: Kac flow teacher and DistillKac students",
        "",
        f"Made {time.strftime('%Y-%m-%d %H:%M')} from `{os.path.dirname(os.path.abspath(path))}`.",
        f"Teacher: {facts.teacher_train_steps} steps of flow matching (noise: {noise['noise']}, "
        f"a = {facts.a:g}, c = {facts.c:g}). "
        f"Distillation chain: {_chain(facts)}.",
        f"Every row is scored on {report['num_samples']} samples (labels cycling 0-9, the same prior draws for "
        "every model) by a small digits classifier: FD-digits, the Fréchet distance of its hidden features to "
        "the real digits' (an FID analogue: lower is better), and class accuracy.",
        "",
        "## Samples",
        "",
        "One column per class, the first 100 samples of each row.",
        "",
        "| model | samples |",
        "|---|---|",
        grids,
        "",
        "## Quality against the number of steps",
        "",
        table,
        "![quality against steps](nfe_report.png)",
        "",
        "`network passes` counts network evaluations per sample (two per step for a guided teacher). "
        f"`rms to teacher endpoint`: distance to the teacher's {facts.reference_steps}-step samples from the same "
        "prior draws. `images per s`: one call on all the samples, compiling excluded (the fastest of a few "
        "runs; one when it takes 10 s or more).",
        *_speedup(report.get("speedup")),
        "",
        "## Stability along the path",
        "",
        "RMS distance between each student's state and the fine teacher's at every point of the student's grid "
        "(DistillKac, Theorem 8: endpoint matching keeps the whole path close).",
        "",
        "![stability along the path](stability.png)",
        "",
        "## Velocity near the data end",
        "",
        f"Left: the {noise['noise']} noise velocity as the noise clock goes to 0"
        + (", below the speed c," if noise["c"] is not None else " (this noise has no speed bound)")
        + " against the Brownian limit's (same c²/a), which grows like 1/√s. Right: the trained teacher's "
        "guided velocity along its sampling path"
        + (", against the bound of its guided target." if noise["c"] is not None else "."),
        "",
        "![velocity near the data end](velocity.png)",
        "",
        "Numbers: `nfe_report.json` and `nfe_report.csv` beside this page.",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
