"""kacjax: Kac flow matching and DistillKac in JAX/Flax.

Layers, each importing only those before it:

- :mod:`kacjax.core`: the math (Kac process, flow, samplers, guidance); no I/O.
- :mod:`kacjax.models`, :mod:`kacjax.data`: velocity networks; input pipelines.
- :mod:`kacjax.training`: train state, loop, checkpoints, parallelism, run directory,
  the setup path, the teacher and the distillation chain.
- :mod:`kacjax.evaluation`: sampling trained models, metrics, the sample and evaluate modes.
- :mod:`kacjax.cli`: the command line, its modes and config defaults; :func:`load` for notebooks.

``kacjax.kac`` and ``kacjax.samplers`` are the public names of :mod:`kacjax.core.kac` and
:mod:`kacjax.core.samplers`.
"""

__version__ = "0.1.0"


def load(workdir: str, stage: int = 0, *, dtype: str = "float32"):
    """Loads a trained teacher (stage 0) or student (stage k, -1 for the last) as a
    :class:`kacjax.evaluation.generator.Generator` that samples in ``dtype``."""
    from kacjax.evaluation.generator import load as _load

    return _load(workdir, stage, dtype=dtype)
