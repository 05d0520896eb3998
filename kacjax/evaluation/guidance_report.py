"""The ``compare_guidance`` mode: one guidance-conditioned student against fixed-``w`` students.

Beyond the paper (as in guided-diffusion distillation, Meng et al. 2023): the config's
chain (``distill.w_range`` set) distils students that take ``w`` as an input. For each
``w`` of ``evaluate.guidance_ws`` this mode also distils (or reuses) a chain with that
``w`` baked in, named ``w<w>`` (``distill_w<w>/``), from the same teacher with the same
stages, and scores the last students of both at that ``w`` on the same prior draws: the
conditioned student needs one network pass per step at every ``w``, the fixed ones one
chain each. The teacher at ``evaluate.teacher_steps`` with the same ``w`` is the reference.
"""

from __future__ import annotations

import copy
import json

import jax
import numpy as np

from kacjax.evaluation import digits_figures
from kacjax.evaluation.generator import load
from kacjax.evaluation.metrics import build_digits_judge
from kacjax.evaluation.tables import markdown_table, write_csv
from kacjax.training import logs
from kacjax.training.distill import check_distill_config, run_chain
from kacjax.training.rundir import RunDir

_COLUMNS = ("w", "model", "steps", "network_passes", "fd_digits", "accuracy", "rms_to_teacher_endpoint")


def fixed_chain_config(config, w: float):
    """The config of the fixed-``w`` chain compared at ``w``: the same stages, ``w`` baked in."""
    cfg = copy.deepcopy(config)
    with cfg.unlocked():
        cfg.distill.update(w=float(w), w_range=(), name=f"w{w:g}")
    return cfg


def check_config(config, mesh=None) -> None:
    """Raises ValueError unless the chain is guidance-conditioned and every compared ``w`` is in its range."""
    d, ev = config.distill, config.evaluate
    if config.data.name != "digits":
        raise ValueError(f"bad config: compare_guidance scores digits with the digits judge, not {config.data.name!r}")
    check_distill_config(config, mesh)
    if not d.w_range:
        raise ValueError("bad config: compare_guidance needs a guidance-conditioned chain: set distill.w_range")
    ws = tuple(ev.get("guidance_ws", ()))
    if not ws or not all(isinstance(w, (int, float)) and d.w_range[0] <= w <= d.w_range[1] for w in ws):
        raise ValueError(f"bad config: evaluate.guidance_ws must be weights in distill.w_range={tuple(d.w_range)}, "
                         f"got {ws}")
    if not (isinstance(ev.num_samples, int) and ev.num_samples >= 2):
        raise ValueError(f"bad config: evaluate.num_samples must be an integer >= 2, got {ev.num_samples!r}")
    for w in ws:
        check_distill_config(fixed_chain_config(config, w), mesh)


def compare_guidance(config, workdir: str) -> dict:
    """Distils what is missing, then writes ``guidance_report.{json,md,csv,png}`` and returns the report."""
    check_config(config)
    ev, layout = config.evaluate, RunDir(workdir)
    ws = [float(w) for w in ev.guidance_ws]
    run_chain(config, workdir)
    for w in ws:
        logs.info(f"compare_guidance: the chain with w={w:g} baked in")
        run_chain(fixed_chain_config(config, w), workdir)
    teacher = load(workdir, 0)
    conditioned = load(workdir, -1, chain=config.distill.name)
    num = ev.num_samples
    labels = np.arange(num, dtype=np.int32) % teacher.num_classes
    key = jax.random.PRNGKey(config.seed + 13)
    judge = build_digits_judge()
    rows = []
    for w in ws:
        fixed = load(workdir, -1, chain=f"w{w:g}")
        fine = teacher.solve(key, num, labels, steps=ev.teacher_steps, w=w)
        reference = np.clip(np.asarray(fine.x), -1, 1)
        for name, generated in (("teacher", fine), ("conditioned student", conditioned.solve(key, num, labels, w=w)),
                                ("fixed-w student", fixed.solve(key, num, labels))):
            x = np.clip(np.asarray(generated.x), -1, 1)
            row = {"w": w, "model": name, "steps": len(generated.times) - 1,
                   "network_passes": generated.network_passes, "fd_digits": judge.frechet(x),
                   "accuracy": judge.accuracy(x, labels),
                   "rms_to_teacher_endpoint": float(np.sqrt(np.mean(np.square(x - reference))))}
            logs.info(f"compare_guidance: w={w:g} {name}: FD-digits {row['fd_digits']:.3f}, "
                      f"accuracy {row['accuracy']:.3f}")
            rows.append(row)
    report = {"num_samples": num, "w_range": list(config.distill.w_range), "rows": rows}
    if jax.process_index() == 0:
        with open(layout.report("guidance_report.json"), "w") as f:
            json.dump(report, f, indent=2)
        with open(layout.report("guidance_report.md"), "w") as f:
            f.write(markdown_table(rows, _COLUMNS))
        write_csv(layout.report("guidance_report.csv"), rows, _COLUMNS)
        digits_figures.guidance(layout.report("guidance_report.png"), rows)
        logs.info(f"wrote {layout.report('guidance_report.md')} and .json, .csv, .png")
    return report
