"""kacjax: Kac flow matching and DistillKac in JAX/Flax.

Layers, each importing only those before it (``tests/test_layout.py`` holds the rule):

- :mod:`kacjax.core`: the math (Kac process, random flights, flow, samplers, guidance); no I/O.
- :mod:`kacjax.runtime`: logging and metric files on process 0, devices and the data-parallel mesh.
- :mod:`kacjax.models`, :mod:`kacjax.data`: velocity networks; input pipelines.
- :mod:`kacjax.training`: train state, loop, checkpoints, run directory, the setup path, and the
  ``train`` and ``distill`` modes (the teacher and the distillation chain).
- :mod:`kacjax.evaluation`: generation, scoring kernels (``metrics/``), one report per experiment
  (``reports/``) with one writer of report files, and the ``sample``, ``evaluate`` and
  ``fid_stats`` modes; nothing in it trains.
- :mod:`kacjax.configs`: the config defaults the experiments and the command line start from.
- :mod:`kacjax.cli`: the command line, the table of modes and their one validation, and the
  ``compare_guidance`` mode (it distils, then reports).

For notebooks: :func:`load_config`, :func:`run` (what the command line runs) and :func:`load`.

``kacjax.kac``, ``kacjax.samplers``, ``kacjax.flight`` and ``kacjax.fid`` re-export the public
names (``__all__``) of :mod:`kacjax.core.kac`, :mod:`kacjax.core.samplers`,
:mod:`kacjax.core.flight` and :mod:`kacjax.evaluation.metrics.fid`.
"""

__version__ = "0.1.0"


def load(workdir: str, stage: int = 0, *, chain: str = "", dtype: str = "float32"):
    """Loads a trained teacher (stage 0) or student (stage k of ``chain``, the ``distill.name`` it was
    distilled under; -1 for the last) as a :class:`kacjax.evaluation.generator.Generator` sampling in ``dtype``."""
    from kacjax.evaluation.generator import load as _load

    return _load(workdir, stage, chain=chain, dtype=dtype)


def load_config(spec: str):
    """The config of ``path/to/experiment.py[:variant]``, as the command line reads it."""
    from kacjax.configs.defaults import load_config as _load_config

    return _load_config(spec)


def run(config, workdir: str, modes=None) -> None:
    """Runs ``modes`` (default ``config.pipeline``) in ``workdir`` after checking every value they read,
    as ``kacjax --config ... --workdir ...`` does; finished parts are reused."""
    from kacjax.cli.modes import run_pipeline

    run_pipeline(config, workdir, modes)
