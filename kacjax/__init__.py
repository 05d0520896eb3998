"""kacjax: Kac flow matching and DistillKac in JAX/Flax.

``kacjax.load(workdir, stage=0)`` returns a :class:`kacjax.api.Generator` for notebooks.
The Kac process itself is in :mod:`kacjax.kac`, the flow in :mod:`kacjax.flow`.
"""

__version__ = "0.1.0"


def load(workdir: str, stage: int = 0):
    """Loads a trained teacher (stage 0) or student (stage k, -1 for the last); see :mod:`kacjax.api`."""
    from kacjax.api import load as _load

    return _load(workdir, stage)
