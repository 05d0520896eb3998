"""The Kac flow: data carried to Kac noise by 1-D Kac processes or by random flights.

Forward process: ``x_t = f(t) x0 + K(g(t))`` for ``t`` in ``[0, T]``, with ``K`` Kac noise
(rate ``a``, speed ``c``). The regression target of Kac flow matching is
``u* = f'(t) x0 + g'(t) v(g(t), K)`` with ``v`` the noise's exact velocity, evaluated with
the sampler's boundary flag. Generation integrates ``dx/dt = u(x, t)`` from ``T`` down to 0,
starting from the prior ``K(g(T))``.

``noise_dim`` says what carries the coordinates. ``1`` (the papers' choice): an independent
1-D Kac process per coordinate (:mod:`kacjax.core.kac`). ``2`` or ``4``: one random flight
per group of ``noise_dim`` consecutive coordinates of each example's row-major (C order)
flattening, e.g. horizontally adjacent pixel pairs of a one-channel ``(H, W, 1)`` image, or
the point itself for 2-D toy data (:mod:`kacjax.core.flight`). The same grouping serves
the noise, the target and the prior.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jax.sharding import PartitionSpec

from kacjax.core import flight, kac

F_SCHEDULES = ("linear", "exp")
G_SCHEDULES = ("t", "t2")
NOISE_DIMS = (1, *flight.DIMS)


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
      noise_dim: 1 (a Kac process per coordinate), 2 or 4 (a random flight per group of
        that many consecutive coordinates; see the module docstring). A coordinate of a
        flight of rate ``a`` has the long-time variance of a 1-D process of rate
        ``a noise_dim / 2``.
    """

    a: float = 9.0
    c: float = 3.0
    T: float = 1.0
    f_schedule: str = "linear"
    g_schedule: str = "t"
    noise_dim: int = 1

    def __post_init__(self):
        kac.check_positive(a=self.a, c=self.c, T=self.T)
        if self.f_schedule not in F_SCHEDULES:
            raise ValueError(f"f_schedule must be one of {F_SCHEDULES}, got {self.f_schedule!r}")
        if self.g_schedule not in G_SCHEDULES:
            raise ValueError(f"g_schedule must be one of {G_SCHEDULES}, got {self.g_schedule!r}")
        d = self.noise_dim
        if d != 1 or isinstance(d, bool) or not isinstance(d, int):
            try:
                flight.check_dim(d)
            except ValueError as e:
                raise ValueError(f"noise_dim must be 1 (a Kac process per coordinate) or a flight's dim: {e}") from None

    @property
    def limit_variance_rate(self) -> float:
        """``sigma^2`` with which each noise coordinate behaves like ``sigma W(t)`` at long times:
        ``c^2 / a`` for Kac processes, ``2 c^2 / (a noise_dim)`` for random flights."""
        rate = self.a if self.noise_dim == 1 else self.a * self.noise_dim / 2
        return self.c * self.c / rate

    @property
    def noise_name(self) -> str:
        """What carries the coordinates, in words (for reports)."""
        return {1: "Kac", 2: "planar flight", 4: "4-D flight"}[self.noise_dim]

    def check_example_shape(self, shape) -> None:
        """Raises ValueError unless an example of ``shape`` splits into groups of ``noise_dim`` coordinates."""
        size = math.prod(shape)
        if size % self.noise_dim:
            fits = [d for d in NOISE_DIMS if size % d == 0]
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
        """Exact noise ``K(clock)``, drawn example by example.

        Args:
          key: PRNG key; example ``i`` uses the ``i``-th of ``jax.random.split(key, B)``,
            so a draw does not depend on the batch's layout over devices.
          clock: noise times >= 0, shape ``(B,)``.
          shape: ``(B, ...)``; each example's size must be divisible by ``noise_dim``.
          mesh: optional mesh that shards the batch; each device then draws its own
            rows (see :func:`per_example`).

        Returns:
          ``(noise, on_boundary)`` of ``shape`` (float, bool): the flag marks draws with no
          switch (on ``+-c clock``, or on the flight's sphere: then every coordinate of
          the group is flagged).
        """
        self.check_example_shape(shape[1:])
        size, d = math.prod(shape[1:]), self.noise_dim

        def one(k, s):  # flat draws: sampler blocks span the whole example
            if d == 1:
                x, on_boundary = kac.sample(k, s, (size,), a=self.a, c=self.c)
            else:
                x, on_sphere = flight.sample(k, s, (size // d, d), a=self.a, c=self.c, dim=d)
                on_boundary = jnp.repeat(on_sphere, d)
            return x.reshape(shape[1:]), on_boundary.reshape(shape[1:])

        keys = jax.random.split(key, shape[0])
        return per_example(one, mesh)(keys, jnp.broadcast_to(clock, shape[:1]))

    def noise_velocity(self, noise, clock, on_boundary):
        """The exact velocity ``v(clock, K)`` of draws from :meth:`noise`, of ``noise``'s shape ``(B, ...)``.

        ``clock`` is ``(B,)``; ``on_boundary`` is :meth:`noise`'s flag, which alone decides the
        draws without a switch (speed ``c``).
        """
        B = noise.shape[0]
        if self.noise_dim == 1:
            clock = clock.reshape((B,) + (1,) * (noise.ndim - 1))
            return kac.velocity(noise, clock, a=self.a, c=self.c, on_atom=on_boundary)
        d = self.noise_dim
        rows = noise.reshape(B, -1, d)
        on_sphere = on_boundary.reshape(B, -1, d)[..., 0]
        v = flight.velocity(rows, clock[:, None], a=self.a, c=self.c, dim=d, on_sphere=on_sphere)
        return v.reshape(noise.shape)

    def prior_sample(self, key, shape, *, mesh=None):
        """Draws the prior ``K(g(T))`` of ``shape`` ``(B, ...)`` (exact Kac noise; see :meth:`noise`)."""
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
          ``(x_t, target)``, both of ``x0``'s shape: ``x_t = f x0 + K(g(t))`` and
          ``target = f' x0 + g' v(g(t), K)``, with ``v`` evaluated on the sampled
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
