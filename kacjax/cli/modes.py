"""The modes the command line runs, and the one validation of a config for all of them.

Each mode pairs the function that runs it with the check of every config value it
reads; :func:`validate` runs the checks of all the modes about to run before the first
one starts, so a bad value is refused in seconds, with nothing written.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

from kacjax.evaluation import guidance_report
from kacjax.evaluation.evaluate import check_evaluate_config, check_fid_stats_config, evaluate
from kacjax.evaluation.image_report import write_reference_statistics
from kacjax.evaluation.write_samples import check_sample_config, write_samples
from kacjax.training import logs, parallel
from kacjax.training.distill import check_distill_config, run_chain
from kacjax.training.setup import check_train_config
from kacjax.training.teacher import train_teacher


class Mode(NamedTuple):
    """``run(config, workdir)`` does the work; ``check(config, mesh)`` raises ValueError first."""

    run: Callable
    check: Callable


MODES = {
    "train": Mode(train_teacher, check_train_config),
    "distill": Mode(run_chain, check_distill_config),
    "sample": Mode(write_samples, lambda config, mesh: check_sample_config(config)),
    "evaluate": Mode(evaluate, lambda config, mesh: check_evaluate_config(config)),
    "fid_stats": Mode(write_reference_statistics, lambda config, mesh: check_fid_stats_config(config)),
    "compare_guidance": Mode(guidance_report.compare_guidance, guidance_report.check_config),
}


def validate(config, modes: Sequence[str], *, devices: Optional[Sequence] = None) -> None:
    """Raises ValueError naming the first bad value that any of ``modes`` would read.

    The batch sizes are checked against ``devices`` (default: all devices of all processes).
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"bad config: unknown modes {unknown} in the pipeline; choose from {list(MODES)}")
    mesh = parallel.make_mesh(devices)
    for mode in modes:
        MODES[mode].check(config, mesh)


def run_pipeline(config, workdir: str, modes: Optional[Sequence[str]] = None) -> None:
    """Checks ``config`` for every mode, then runs ``modes`` (default: ``config.pipeline``) in order.

    What the command line's ``--mode`` does, for notebooks: each mode resumes from what
    ``workdir`` holds, so a second call reuses the finished parts.
    """
    modes = tuple(config.pipeline if modes is None else modes)
    validate(config, modes)
    for mode in modes:
        logs.info(f"{mode} -> {workdir}")
        MODES[mode].run(config, workdir)
