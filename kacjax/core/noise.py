"""The noise seam: which process carries each group of ``noise_dim`` coordinates (``flow.noise_process``).

Each family lives in its own module with an exact sampler, its exact velocity ``E[V | N = n]`` and
its law; :data:`FAMILIES` maps ``flow.noise_process`` to a :class:`NoiseFamily`, the one interface
:class:`~kacjax.core.flow.KacFlow` calls. Adding a family: its module, one entry here, tests.

- ``"kac"`` (the papers): ``noise_dim`` 1, a 1-D Kac process per coordinate
  (:mod:`~kacjax.core.kac`); 2 or 4, a random flight per group (:mod:`~kacjax.core.flight`).
- ``"line"``: one 1-D Kac process along a uniform random line per group of any ``d >= 2``
  coordinates, the whole example included (:mod:`~kacjax.core.line`).
- ``"brownian"``, ``"linear"``: the Gaussian baselines, ``sigma W(s)`` and Gaussian flow matching,
  with ``sigma^2 = c^2 / a``, per coordinate (:mod:`~kacjax.core.gaussian`).

Shapes: ``sample`` draws one example's ``(groups, d)`` at a scalar clock; ``velocity`` takes a
batch of rows ``(B, groups, d)``, clocks ``(B,)`` and the sampler's flags ``(B, groups, d)``.
``horizon`` is the noise clock at ``t = T`` (the ``linear`` path's ``S``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from kacjax.core import flight, gaussian, kac, line


@dataclasses.dataclass(frozen=True)
class NoiseFamily:
    """One noise family behind ``flow.noise_process``.

    Attributes:
      check_dim: raises ValueError for a group size ``d`` the family has no exact law for.
      sample: ``(key, clock, (groups, d), *, a, c, horizon) -> (noise, flag)``, both ``(groups, d)``;
        the flag (bool) marks draws whose velocity is decided by it alone (no switch yet).
      velocity: ``(rows, clock, flag, *, a, c, horizon) -> v`` of ``rows``' shape ``(B, groups, d)``.
      variance: ``(clock, *, a, c, dim, horizon) ->`` per-coordinate ``Var N_i(clock)``.
      limit_rate: ``(a, c, dim) -> sigma^2``, the per-coordinate variance per unit clock at long
        times (Kac noises) or of the Gaussian path's ``sigma``.
      describe: ``dim ->`` the noise in words, for reports.
      bounded: whether every velocity is at most ``c`` in norm.
    """

    check_dim: Callable
    sample: Callable
    velocity: Callable
    variance: Callable
    limit_rate: Callable
    describe: Callable
    bounded: bool


def _kac_check(dim) -> None:
    if dim != 1 or isinstance(dim, bool) or not isinstance(dim, int):
        try:
            flight.check_dim(dim)
        except ValueError as e:
            raise ValueError(f"noise_dim must be 1 (a Kac process per coordinate) or a flight's dim: {e}") from None


def _kac_sample(key, clock, shape, *, a, c, horizon):
    groups, dim = shape
    if dim == 1:  # one flat block per example: the sampler's rejection blocks span the whole example
        x, on_atom = kac.sample(key, clock, (groups,), a=a, c=c)
        return x[:, None], on_atom[:, None]
    x, on_sphere = flight.sample(key, clock, shape, a=a, c=c, dim=dim)
    return x, jnp.broadcast_to(on_sphere[:, None], shape)


def _kac_velocity(rows, clock, flag, *, a, c, horizon):
    dim = rows.shape[-1]
    if dim == 1:
        return kac.velocity(rows, clock[:, None, None], a=a, c=c, on_atom=flag)
    return flight.velocity(rows, clock[:, None], a=a, c=c, dim=dim, on_sphere=flag[..., 0])


def _kac_variance(clock, *, a, c, dim, horizon):
    if dim == 1:
        return kac.variance(clock, a=a, c=c)
    # E|X|^2 = 2 c^2 (a s - 1 + e^{-a s}) / a^2 for a flight: the velocity correlation is c^2 e^{-a u}
    lam = a * jnp.asarray(clock)
    return 2.0 * c * c * (lam + jnp.expm1(-lam)) / (a * a * dim)


def _line_sample(key, clock, shape, *, a, c, horizon):
    x, on_sphere = line.sample(key, clock, shape, a=a, c=c)
    return x, jnp.broadcast_to(on_sphere[:, None], shape)


def _line_velocity(rows, clock, flag, *, a, c, horizon):
    return line.velocity(rows, clock[:, None], a=a, c=c, on_sphere=flag[..., 0])


def _gaussian_check(dim) -> None:
    if dim != 1 or isinstance(dim, bool):
        raise ValueError(f"a Gaussian noise is independent per coordinate: noise_dim must be 1, got {dim!r}")


def _gaussian(path: str) -> NoiseFamily:
    def sample(key, clock, shape, *, a, c, horizon):
        return gaussian.sample(key, clock, shape, path=path, sigma=c / a**0.5, horizon=horizon)

    def velocity(rows, clock, flag, *, a, c, horizon):
        return gaussian.velocity(rows, clock[:, None, None], path=path, horizon=horizon)

    def variance(clock, *, a, c, dim, horizon):
        return gaussian.variance(clock, path=path, sigma=c / a**0.5, horizon=horizon)

    words = {"brownian": "Brownian", "linear": "Gaussian flow matching"}[path]
    return NoiseFamily(_gaussian_check, sample, velocity, variance, lambda a, c, dim: c * c / a,
                       lambda dim: words, bounded=False)


FAMILIES = {
    "kac": NoiseFamily(_kac_check, _kac_sample, _kac_velocity, _kac_variance,
                       lambda a, c, dim: c * c / a if dim == 1 else 2 * c * c / (a * dim),
                       lambda dim: {1: "Kac", 2: "planar flight", 4: "4-D flight"}[dim], bounded=True),
    "line": NoiseFamily(line.check_dim, _line_sample, _line_velocity,
                        lambda clock, *, a, c, dim, horizon: line.variance(clock, a=a, c=c, dim=dim),
                        lambda a, c, dim: c * c / (a * dim), lambda dim: f"line-Kac in {dim} dims", bounded=True),
    "brownian": _gaussian("brownian"),
    "linear": _gaussian("linear"),
}


def family(name) -> NoiseFamily:
    """The family registered as ``name``; ValueError naming the choices otherwise."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(f"noise_process must be one of {tuple(FAMILIES)}, got {name!r}")
    return FAMILIES[name]
