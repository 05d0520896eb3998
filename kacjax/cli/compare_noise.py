"""The ``compare_noise`` mode: the experiment once per noise family and training seed, then the table.

It trains, so it lives above ``evaluation``: each run of
:func:`kacjax.evaluation.reports.noise_comparison.plan` goes through the experiment's own modes in
its own workdir (``workdir/compare_noise/<family>_seed<k>/``), reusing whatever a run has finished,
then :func:`~kacjax.evaluation.reports.noise_comparison.gather` writes ``noise_report.*``. The
modes come from the caller's table (:data:`kacjax.cli.modes.MODES`), so that every run is checked
and run exactly as on the command line.
"""

from __future__ import annotations

from kacjax.evaluation.reports import noise_comparison
from kacjax.runtime import logs


def check_compare_noise_config(config, mesh, modes) -> None:
    """Raises ValueError unless every run of the comparison passes the checks of its modes (``modes``:
    name -> :class:`kacjax.cli.modes.Mode`) and the report can gather them."""
    noise_comparison.check(config)
    for _, _, cfg in noise_comparison.plan(config):
        for mode in cfg.pipeline:
            modes[mode].check(cfg, mesh)


def compare_noise(config, workdir: str, modes) -> dict:
    """Runs (or resumes) every run of the comparison with ``modes``' functions, then gathers the report."""
    runs = noise_comparison.plan(config)
    for i, (family, seed, cfg) in enumerate(runs):
        directory = noise_comparison.run_dir(workdir, family, seed)
        logs.info(f"compare_noise: run {i + 1}/{len(runs)}: {family}, seed {seed} -> {directory}")
        for mode in cfg.pipeline:
            modes[mode].run(cfg, directory)
    return noise_comparison.gather(config, workdir)
