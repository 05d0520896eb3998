"""``kacjax.samplers``: ODE samplers with exact NFE counts, the public names of :mod:`kacjax.core.samplers`."""

from kacjax.core.samplers import METHODS, Solution, check_method, integrate, nfe, time_grid

__all__ = ["METHODS", "Solution", "check_method", "nfe", "time_grid", "integrate"]
