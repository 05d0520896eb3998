"""``kacjax.kac``: the 1-D Kac process (exact sampler, law, velocity), the public names of
:mod:`kacjax.core.kac`."""

from kacjax.core.kac import atom_mass, cdf, check_positive, density, sample, simulate, variance, velocity

__all__ = ["sample", "simulate", "density", "atom_mass", "variance", "cdf", "velocity", "check_positive"]
