"""The Kac flow: data carried to noise by Kac processes, random flights, line-Kac or Gaussian noise.

Forward process: ``x_t = f(t) x0 + N(g(t))`` for ``t`` in ``[0, T]``, with ``N`` the noise of
``noise_process`` (Kac noise by default: rate ``a``, speed ``c``). The regression target of flow
matching is ``u* = f'(t) x0 + g'(t) v(g(t), N)`` with ``v`` the noise's exact velocity, evaluated
with the sampler's boundary flag. Generation integrates ``dx/dt = u(x, t)`` from ``T`` down to 0,
starting from the prior ``N(g(T))``.

``noise_process`` and ``noise_dim`` say what carries the coordinates (:mod:`kacjax.core.noise`):
one process per group of ``noise_dim`` consecutive coordinates of each example's row-major (C
order) flattening, e.g. horizontally adjacent pixel pairs of a one-channel ``(H, W, 1)`` image,
or the point itself for 2-D toy data. ``"kac"`` with ``noise_dim`` 1 (the papers' choice) is an
independent 1-D Kac process per coordinate, with 2 or 4 a random flight per group; ``"line"`` a
1-D Kac process along a random line per group; ``"brownian"`` and ``"linear"`` the Gaussian
baselines. The same grouping serves the noise, the target and the prior.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jax.sharding import PartitionSpec

from kacjax.core import draws, noise as noise_families

F_SCHEDULES = ("linear", "exp")
G_SCHEDULES = ("t", "t2")


@dataclasses.dataclass(frozen=True)
class KacFlow:
    """Kac flow hyperparameters and schedules.

    Attributes:
      a: switching rate of the Kac noise (1 / time).
      c: speed of the Kac noise (space / time); every target satisfies
        ``|u*| <= max|f'| * max|x0| + max g' * c``.
      T: terminal time.
      f_schedule: ``"linear"`` (``f = 1 - t/T``, the prior is pure noise) or
        ``"exp"`` (``f = exp(-t)``; the prior then ignores the ``f(T) x0`` term).
      g_schedule: ``"t"`` (``g = t``) or ``"t2"`` (``g = T (t/T)^2``).
      noise_dim: the size of the coordinate groups one noise process carries (see the module
        docstring): for ``"kac"`` 1 (a Kac process per coordinate) or 2 or 4 (a random flight
        per group; a coordinate of a flight of rate ``a`` has the long-time variance of a 1-D
        process of rate ``a noise_dim / 2``); for ``"line"`` any size >= 2 that divides the
        example, the whole example included; 1 for the Gaussian families.
      noise_process: the noise family, a key of :data:`kacjax.core.noise.FAMILIES`: ``"kac"``,
        ``"line"``, ``"brownian"`` or ``"linear"`` (``sigma^2 = c^2 / a`` for the last two).
    """

    a: float = 9.0
    c: float = 3.0
    T: float = 1.0
    f_schedule: str = "linear"
    g_schedule: str = "t"
    noise_dim: int = 1
    noise_process: str = "kac"

    def __post_init__(self):
        draws.check_positive(a=self.a, c=self.c, T=self.T)
        if self.f_schedule not in F_SCHEDULES:
            raise ValueError(f"f_schedule must be one of {F_SCHEDULES}, got {self.f_schedule!r}")
        if self.g_schedule not in G_SCHEDULES:
            raise ValueError(f"g_schedule must be one of {G_SCHEDULES}, got {self.g_schedule!r}")
        self.family.check_dim(self.noise_dim)

    @property
    def family(self) -> noise_families.NoiseFamily:
        """The noise family of ``noise_process``."""
        return noise_families.family(self.noise_process)

    @property
    def horizon(self) -> float:
        """The noise clock ``g(T)`` at the prior (``T`` for both schedules)."""
        return float(self.g(self.T))

    @property
    def limit_variance_rate(self) -> float:
        """``sigma^2`` with which each noise coordinate behaves like ``sigma W(t)`` at long times:
        ``c^2 / a`` for Kac processes and the Gaussian families, ``2 c^2 / (a noise_dim)`` for random
        flights, ``c^2 / (a noise_dim)`` for line-Kac noise."""
        return self.family.limit_rate(self.a, self.c, self.noise_dim)

    def variance(self, clock):
        """Per-coordinate variance of the noise at noise clock ``clock`` (its exact law)."""
        return self.family.variance(clock, a=self.a, c=self.c, dim=self.noise_dim, horizon=self.horizon)

    @property
    def speed_bound(self):
        """``c`` when every noise velocity is at most ``c`` in norm (the Kac families), else None."""
        return self.c if self.family.bounded else None

    @property
    def noise_name(self) -> str:
        """What carries the coordinates, in words (for reports)."""
        return self.family.describe(self.noise_dim)

    def check_example_shape(self, shape) -> None:
        """Raises ValueError unless an example of ``shape`` splits into groups of ``noise_dim`` coordinates."""
        size = math.prod(shape)
        if size % self.noise_dim:
            fits = [d for d in range(1, size + 1) if size % d == 0 and _accepts(self.family, d)]
            raise ValueError(f"flow.noise_dim={self.noise_dim} groups each example's coordinates in "
                             f"{self.noise_dim}s, but examples of shape {tuple(shape)} have {size}; "
                             f"use noise_dim in {fits}")

    @classmethod
    def from_config(cls, cfg) -> "KacFlow":
        """Builds a flow from a mapping with the dataclass's field names."""
        return cls(**{f.name: cfg[f.name] for f in dataclasses.fields(cls) if f.name in cfg})

    def f(self, t):
        """Data coefficient ``f(t)``."""
        if self.f_schedule == "linear":
            return 1.0 - t / self.T
        return jnp.exp(-t)

    def df(self, t):
        """``f'(t)``."""
        if self.f_schedule == "linear":
            return jnp.full_like(t, -1.0 / self.T)
        return -jnp.exp(-t)

    def g(self, t):
        """Noise clock ``g(t)``: the Kac process is observed at time ``g(t)``."""
        if self.g_schedule == "t":
            return t
        return self.T * (t / self.T) ** 2

    def dg(self, t):
        """``g'(t)``."""
        if self.g_schedule == "t":
            return jnp.ones_like(t)
        return 2.0 * t / self.T

    def noise(self, key, clock, shape, *, mesh=None):
        """Exact noise ``N(clock)``, drawn example by example.

        Args:
          key: PRNG key; example ``i`` uses the ``i``-th of ``jax.random.split(key, B)``,
            so a draw does not depend on the batch's layout over devices.
          clock: noise times >= 0, shape ``(B,)``.
          shape: ``(B, ...)``; each example's size must be divisible by ``noise_dim``.
          mesh: optional mesh that shards the batch; each device then draws its own
            rows (see :func:`per_example`).

        Returns:
          ``(noise, on_boundary)`` of ``shape`` (float, bool): the flag marks draws with no
          switch (on ``+-c clock``, or on a group's sphere: then every coordinate of the group
          is flagged; never for the Gaussian families).
        """
        self.check_example_shape(shape[1:])
        size, d = math.prod(shape[1:]), self.noise_dim
        family, params = self.family, dict(a=self.a, c=self.c, horizon=self.horizon)

        def one(k, s):  # one example's groups: (size // d, d)
            x, flag = family.sample(k, s, (size // d, d), **params)
            return x.reshape(shape[1:]), flag.reshape(shape[1:])

        keys = jax.random.split(key, shape[0])
        return per_example(one, mesh)(keys, jnp.broadcast_to(clock, shape[:1]))

    def noise_velocity(self, noise, clock, on_boundary):
        """The exact velocity ``v(clock, N)`` of draws from :meth:`noise`, of ``noise``'s shape ``(B, ...)``.

        ``clock`` is ``(B,)``; ``on_boundary`` is :meth:`noise`'s flag, which alone decides the
        draws without a switch (speed ``c``).
        """
        B, d = noise.shape[0], self.noise_dim
        rows, flags = noise.reshape(B, -1, d), on_boundary.reshape(B, -1, d)
        v = self.family.velocity(rows, clock, flags, a=self.a, c=self.c, horizon=self.horizon)
        return v.reshape(noise.shape)

    def prior_sample(self, key, shape, *, mesh=None):
        """Draws the prior ``N(g(T))`` of ``shape`` ``(B, ...)`` (exact noise; see :meth:`noise`)."""
        t_end = self.g(jnp.asarray(self.T, jnp.result_type(float)))
        x, _ = self.noise(key, t_end, shape, mesh=mesh)
        return x

    def corrupt(self, key, x0, t, *, mesh=None):
        """Forward-process draw and its flow-matching target.

        Args:
          key: PRNG key.
          x0: data, shape ``(B, ...)``.
          t: times in ``[0, T]``, shape ``(B,)``.
          mesh: optional mesh for the noise (see :meth:`noise`).

        Returns:
          ``(x_t, target)``, both of ``x0``'s shape: ``x_t = f x0 + N(g(t))`` and
          ``target = f' x0 + g' v(g(t), N)``, with ``v`` evaluated on the sampled
          noise and its boundary flag (never re-derived from ``x_t``).
        """
        t = t.astype(x0.dtype)
        clock = self.g(t)
        noise, on_boundary = self.noise(key, clock, x0.shape, mesh=mesh)
        speed = self.noise_velocity(noise, clock, on_boundary)
        t = jnp.reshape(t, t.shape + (1,) * (x0.ndim - t.ndim))
        x_t = self.f(t) * x0 + noise
        target = self.df(t) * x0 + self.dg(t) * speed
        return x_t, target


def _accepts(family, dim) -> bool:
    try:
        family.check_dim(dim)
    except ValueError:
        return False
    return True


def per_example(fn, mesh=None):
    """Runs ``fn(*rows)``, written for one example, over a batch: ``(*arrays (B, ...)) -> outputs (B, ...)``.

    ``fn`` is vmapped; with a ``mesh``, inside ``shard_map`` with the batch axis split over
    all of the mesh's axes, so each device works on its own rows alone. Loops whose trip
    count depends on the data (rejection samplers) then stop per device with no collective
    in their condition, which would otherwise cost a cross-device sync per iteration (and
    on XLA:CPU, one more chance of the deadlock that
    :func:`kacjax.runtime.parallel.size_cpu_thread_pools` prevents). Each example's result
    is independent of how the batch is laid out over devices.
    """
    batched = jax.vmap(fn)
    if mesh is None:
        return batched
    rows = PartitionSpec(tuple(mesh.axis_names))
    # check_vma off: the samplers' loops start from constants that the body makes per-device.
    return jax.shard_map(batched, mesh=mesh, in_specs=rows, out_specs=rows, check_vma=False)


def sample_times(key, batch_size, flow: KacFlow):
    """Training times ``t ~ U[0, T]``, shape ``(batch_size,)``."""
    return jax.random.uniform(key, (batch_size,), maxval=flow.T)
