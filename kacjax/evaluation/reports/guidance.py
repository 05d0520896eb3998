"""The guidance report: one guidance-conditioned student against fixed-``w`` students, on digits.

Beyond the paper (as in guided-diffusion distillation, Meng et al. 2023): the config's
chain (``distill.w_range`` set) holds students that take ``w`` as an input; for each ``w``
of ``evaluate.guidance_ws`` a chain named :func:`fixed_chain_name` (``distill_w<w>/``) has
that ``w`` baked in, from the same teacher with the same stages. The last students of both
are scored at that ``w`` on the same prior draws: the conditioned student needs one network
pass per step at every ``w``, the fixed ones one chain each. The teacher at
``evaluate.teacher_steps`` with the same ``w`` is the reference. The chains are distilled by
the ``compare_guidance`` mode (:mod:`kacjax.cli.compare_guidance`); this module only scores
them. Files: ``guidance_report.{json,md,csv,png}``; the JSON also holds the conditioned / fixed
ratios per ``w``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from kacjax.evaluation.artifacts import write_report
from kacjax.evaluation.generator import Generator
from kacjax.evaluation.metrics.digits_judge import build_digits_judge
from kacjax.evaluation.reports import digits_figures
from kacjax.runtime import logs
from kacjax.training.rundir import RunDir

NAME = "guidance_report"
_COLUMNS = ("w", "model", "steps", "network_passes", "fd_digits", "accuracy", "rms_to_teacher_endpoint")


def fixed_chain_name(w: float) -> str:
    """The ``distill.name`` of the chain with ``w`` baked in that the conditioned one is compared to at ``w``."""
    return f"w{w:g}"


@dataclasses.dataclass(frozen=True)
class GuidanceSettings:
    """The only place the guidance report reads its config.

    Attributes:
      ws: ``evaluate.guidance_ws``, the weights compared; num_samples, teacher_steps: samples
        per row and the reference teacher's steps (``evaluate``).
      chain, w_range: ``distill.name`` and ``distill.w_range`` of the conditioned chain.
      dataset: ``data.name``; seed: draws from ``seed + 13``.
    """

    ws: tuple
    num_samples: int
    teacher_steps: int
    chain: str
    w_range: tuple
    dataset: str
    seed: int

    @classmethod
    def from_config(cls, config) -> GuidanceSettings:
        ev = config.evaluate
        return cls(ws=tuple(ev.get("guidance_ws", ())), num_samples=ev.num_samples, teacher_steps=ev.teacher_steps,
                   chain=config.distill.name, w_range=tuple(config.distill.w_range), dataset=config.data.name,
                   seed=config.seed)


def check(config, mesh) -> None:
    """Raises ValueError unless the data are digits, the chain is guidance-conditioned and every
    compared ``w`` is in its range (``mesh``: unused, the digits are judged on one device)."""
    del mesh
    if config.data.name != "digits":
        raise ValueError(f"bad config: compare_guidance scores digits with the digits judge, not "
                         f"{config.data.name!r}")
    s = GuidanceSettings.from_config(config)
    if not s.w_range:
        raise ValueError("bad config: compare_guidance needs a guidance-conditioned chain: set distill.w_range")
    if not s.ws or not all(isinstance(w, (int, float)) and s.w_range[0] <= w <= s.w_range[1] for w in s.ws):
        raise ValueError(f"bad config: evaluate.guidance_ws must be weights in distill.w_range={s.w_range}, "
                         f"got {s.ws}")
    if not (isinstance(s.num_samples, int) and s.num_samples >= 2):
        raise ValueError(f"bad config: evaluate.num_samples must be an integer >= 2, got {s.num_samples!r}")


def score(judge, name: str, w: float, generated, labels, reference) -> dict:
    """The row of ``generated`` (a :class:`~kacjax.evaluation.sampling.Generated`) at ``w``."""
    x = np.clip(np.asarray(generated.x), -1, 1)
    row = {"w": w, "model": name, "steps": len(generated.times) - 1,
           "network_passes": generated.network_passes, "fd_digits": judge.frechet(x),
           "accuracy": judge.accuracy(x, labels),
           "rms_to_teacher_endpoint": float(np.sqrt(np.mean(np.square(x - reference))))}
    logs.info(f"compare_guidance: w={w:g} {name}: FD-digits {row['fd_digits']:.3f}, accuracy {row['accuracy']:.3f}")
    return row


def conditioned_over_fixed(rows) -> list:
    """Per ``w``: the conditioned student's FD-digits and RMS to the teacher over the fixed-``w``
    student's."""
    by = {(r["w"], r["model"]): r for r in rows}
    ratios = []
    for w in dict.fromkeys(r["w"] for r in rows):
        cond, fixed = by[(w, "conditioned student")], by[(w, "fixed-w student")]
        ratio = {k: cond[k] / fixed[k] for k in ("fd_digits", "rms_to_teacher_endpoint")}
        logs.info(f"compare_guidance: w={w:g} conditioned / fixed: FD-digits {ratio['fd_digits']:.3f}, "
                  f"RMS to the teacher {ratio['rms_to_teacher_endpoint']:.3f}")
        ratios.append({"w": w, **ratio})
    return ratios


def run(config, workdir: str) -> dict:
    """Scores the chains ``workdir`` holds; writes ``guidance_report.{json,md,csv,png}`` and returns the report."""
    s = GuidanceSettings.from_config(config)
    layout = RunDir(workdir)
    ws = [float(w) for w in s.ws]
    teacher = Generator.load(layout.resolve(0))
    conditioned = Generator.load(layout.resolve(-1, s.chain))
    labels = np.arange(s.num_samples, dtype=np.int32) % teacher.num_classes
    key = jax.random.PRNGKey(s.seed + 13)
    judge = build_digits_judge()
    rows = []
    for w in ws:
        fixed = Generator.load(layout.resolve(-1, fixed_chain_name(w)))
        fine = teacher.solve(key, s.num_samples, labels, steps=s.teacher_steps, w=w)
        reference = np.clip(np.asarray(fine.x), -1, 1)
        for name, generated in (("teacher", fine),
                                ("conditioned student", conditioned.solve(key, s.num_samples, labels, w=w)),
                                ("fixed-w student", fixed.solve(key, s.num_samples, labels))):
            rows.append(score(judge, name, w, generated, labels, reference))
    report = {"num_samples": s.num_samples, "w_range": list(s.w_range), "rows": rows,
              "conditioned_over_fixed": conditioned_over_fixed(rows)}
    write_report(layout, NAME, report, table=(rows, _COLUMNS),
                 files={f"{NAME}.png": functools.partial(digits_figures.guidance, rows=rows)})
    return report
