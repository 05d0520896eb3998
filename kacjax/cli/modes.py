"""The modes the command line runs, and the one validation of a config for all of them.

Each mode pairs the function that runs it, named after it, with the check of every config
value it reads, ``check(config, mesh)`` for all of them; :func:`validate` runs the checks of
all the modes about to run before the first one starts, so a bad value is refused in
seconds, with nothing written. The mode functions do not check again: each value is
checked once per run.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

from kacjax.cli.compare_guidance import check_compare_guidance_config, compare_guidance
from kacjax.cli.compare_noise import check_compare_noise_config, compare_noise
from kacjax.cli.config_values import check_numbers
from kacjax.evaluation.modes import (check_evaluate_config, check_fid_stats_config, check_sample_config, evaluate,
                                     fid_stats, sample)
from kacjax.runtime import logs, parallel
from kacjax.training.checkpoint import CheckpointError
from kacjax.training.distill import check_distill_config, distill
from kacjax.training.rundir import RunDir, has_checkpoint
from kacjax.training.checks import check_train_config
from kacjax.training.teacher import train
from kacjax.training.workdir_lock import hold


class Mode(NamedTuple):
    """``check(config, mesh)`` raises ValueError for a value the mode cannot use (the batch sizes
    against ``mesh``); ``run(config, workdir)`` does the work of a config that passed it."""

    run: Callable
    check: Callable


MODES = {
    "train": Mode(train, check_train_config),
    "distill": Mode(distill, check_distill_config),
    "sample": Mode(sample, check_sample_config),
    "evaluate": Mode(evaluate, check_evaluate_config),
    "fid_stats": Mode(fid_stats, check_fid_stats_config),
    "compare_guidance": Mode(compare_guidance, check_compare_guidance_config),
}
# compare_noise runs the modes above, once per noise family and seed
MODES["compare_noise"] = Mode(lambda config, workdir: compare_noise(config, workdir, MODES),
                              lambda config, mesh: check_compare_noise_config(config, mesh, MODES))


# modes that read the workdir's teacher; without a train mode before them, it must exist before any work
NEED_TEACHER = {"distill", "sample", "evaluate", "compare_guidance"}


def validate(config, modes: Sequence[str], *, devices: Optional[Sequence] = None) -> None:
    """Raises ValueError naming the first bad value that any of ``modes`` would read.

    The batch sizes are checked against ``devices`` (default: all devices of all processes).
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"bad config: unknown modes {unknown} in the pipeline; choose from {list(MODES)}")
    check_numbers(config)
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
    teacher = RunDir(workdir).teacher
    if "train" not in modes and set(modes) & NEED_TEACHER and not has_checkpoint(teacher):
        raise CheckpointError(f"no teacher checkpoint in {teacher}: train a teacher there first (kacjax --mode=train)")
    with hold(workdir):  # one run per workdir (kacjax.training.workdir_lock)
        for mode in modes:
            logs.info(f"{mode} -> {workdir}")
            MODES[mode].run(config, workdir)
