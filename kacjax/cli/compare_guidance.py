"""The ``compare_guidance`` mode: distils a guidance-conditioned chain and one fixed-``w`` chain per
compared ``w``, then scores them (:mod:`kacjax.evaluation.reports.guidance`).

It trains, so it lives above ``evaluation``: the config's chain (``distill.w_range`` set) and, for
each ``w`` of ``evaluate.guidance_ws``, the chain with that ``w`` baked in (``distill_w<w>/``),
from the same teacher with the same stages; finished stages are reused.
"""

from __future__ import annotations

import copy

from kacjax.evaluation.reports import guidance
from kacjax.runtime import logs
from kacjax.training.distill import check_distill_config, distill


def fixed_chain_config(config, w: float):
    """The config of the fixed-``w`` chain compared at ``w``: the same stages, ``w`` baked in
    (so no loss weighting over ``w``)."""
    cfg = copy.deepcopy(config)
    with cfg.unlocked():
        cfg.distill.update(w=float(w), w_range=(), w_loss_power=0.0, name=guidance.fixed_chain_name(w))
    return cfg


def check_compare_guidance_config(config, mesh) -> None:
    """Raises ValueError unless the guidance report can score ``config``'s chain and every chain it
    distils (the conditioned one and each fixed-``w`` one) is possible on ``mesh``."""
    guidance.check(config, mesh)
    check_distill_config(config, mesh)
    for w in guidance.GuidanceSettings.from_config(config).ws:
        check_distill_config(fixed_chain_config(config, w), mesh)


def compare_guidance(config, workdir: str) -> dict:
    """Distils what is missing, then writes ``guidance_report.{json,md,csv,png}`` and returns the report."""
    distill(config, workdir)
    for w in guidance.GuidanceSettings.from_config(config).ws:
        logs.info(f"compare_guidance: the chain with w={float(w):g} baked in")
        distill(fixed_chain_config(config, float(w)), workdir)
    return guidance.run(config, workdir)
