"""kacjax: Kac flow matching and DistillKac in JAX/Flax.

Layers, each importing only those before it:

- :mod:`kacjax.core`: the math (Kac process, flow, samplers, guidance); no I/O.
- :mod:`kacjax.models`, :mod:`kacjax.data`: velocity networks; input pipelines.
- :mod:`kacjax.training`: train state, loop, checkpoints, parallelism, run directory,
  the setup path, the teacher and the distillation chain.
- :mod:`kacjax.evaluation`: sampling trained models, metrics, the sample and evaluate modes.
- :mod:`kacjax.cli`: the command line, its modes and config defaults.

For notebooks: :func:`load_config`, :func:`run` (what the command line runs) and :func:`load`.

``kacjax.kac`` and ``kacjax.samplers`` are the public names of :mod:`kacjax.core.kac` and
:mod:`kacjax.core.samplers`.
"""

__version__ = "0.1.0"


def load(workdir: str, stage: int = 0, *, chain: str = "", dtype: str = "float32"):
    """Loads a trained teacher (stage 0) or student (stage k of ``chain``, the ``distill.name`` it was
    distilled under; -1 for the last) as a :class:`kacjax.evaluation.generator.Generator` sampling in ``dtype``."""
    from kacjax.evaluation.generator import load as _load

    return _load(workdir, stage, chain=chain, dtype=dtype)


def load_config(spec: str):
    """The config of ``path/to/experiment.py[:variant]``, as the command line reads it."""
    from kacjax.cli.defaults import load_config as _load_config

    return _load_config(spec)


def run(config, workdir: str, modes=None) -> None:
    """Runs ``modes`` (default ``config.pipeline``) in ``workdir`` after checking every value they read,
    as ``kacjax --config ... --workdir ...`` does; finished parts are reused."""
    from kacjax.cli.modes import run_pipeline

    run_pipeline(config, workdir, modes)
