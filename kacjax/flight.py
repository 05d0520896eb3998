"""``kacjax.flight``: random flights, the multi-dimensional Kac noise (:mod:`kacjax.core.flight`)."""

from kacjax.core.flight import DIMS, atom_mass, check_dim, density, radial_cdf, sample, simulate, velocity

__all__ = ["DIMS", "atom_mass", "check_dim", "density", "radial_cdf", "sample", "simulate", "velocity"]
