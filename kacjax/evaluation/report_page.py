"""``report.md``: the digits report's tables and figures on one Markdown page."""

from __future__ import annotations

import os
import time


def _chain(config) -> str:
    d = config.distill
    grids = " → ".join(str(k) for k in (d.teacher_steps, *d.student_steps))
    guidance = (f"guidance-conditioned students, w ∈ [{d.w_range[0]:g}, {d.w_range[1]:g}] (default {d.w:g})"
                if d.w_range else f"w = {d.w:g} baked into the students")
    return f"{grids} steps, {d.inner_method} inside each teacher step, {guidance}"


def write(path: str, config, report: dict, table: str) -> None:
    """Writes the page to ``path``; images are linked relative to its directory."""
    tr, ev = config.train, config.evaluate
    grids = "\n".join(f"| {label} | ![{label}]({name}) |" for label, name in report["grids"].items())
    lines = [
        "# kacjax on digits: Kac flow teacher and DistillKac students",
        "",
        f"Made {time.strftime('%Y-%m-%d %H:%M')} from `{os.path.dirname(os.path.abspath(path))}`.",
        f"Teacher: {tr.num_steps} steps of Kac flow matching (a = {config.flow.a:g}, c = {config.flow.c:g}, "
        f"noise: {report['velocity']['noise']['noise']}). "
        f"Distillation chain: {_chain(config)}.",
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
        f"`rms to teacher endpoint`: distance to the teacher's {ev.teacher_steps}-step samples from the same "
        "prior draws.",
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
        "Left: the Kac noise velocity stays below the speed c as the noise clock goes to 0, where the "
        "Brownian limit's (same c²/a) grows like 1/√s. Right: the trained teacher's guided velocity along "
        "its sampling path, against the bound of its guided target.",
        "",
        "![velocity near the data end](velocity.png)",
        "",
        "Numbers: `nfe_report.json` and `nfe_report.csv` beside this page.",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
