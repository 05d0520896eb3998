"""The Kac flow: data carried to Kac noise by independent 1-D Kac processes.

Forward process, per coordinate: ``x_t = f(t) x0 + K(g(t))`` for ``t`` in ``[0, T]``,
with ``K`` a Kac process (rate ``a``, speed ``c``). The regression target of Kac flow
matching is ``u* = f'(t) x0 + g'(t) v(g(t), K)`` with ``v`` the Kac velocity
(:func:`kacjax.core.kac.velocity`), evaluated with the sampler's atom flag.
Generation integrates ``dx/dt = u(x, t)`` from ``T`` down to 0, starting from the
prior ``K(g(T))``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jax.sharding import PartitionSpec

from kacjax.core import kac

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
    """

    a: float = 9.0
    c: float = 3.0
    T: float = 1.0
    f_schedule: str = "linear"
    g_schedule: str = "t"

    def __post_init__(self):
        kac.check_positive(a=self.a, c=self.c, T=self.T)
        if self.f_schedule not in F_SCHEDULES:
            raise ValueError(f"f_schedule must be one of {F_SCHEDULES}, got {self.f_schedule!r}")
        if self.g_schedule not in G_SCHEDULES:
            raise ValueError(f"g_schedule must be one of {G_SCHEDULES}, got {self.g_schedule!r}")

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
        """Exact Kac noise ``K(clock)``, drawn example by example.

        Args:
          key: PRNG key; example ``i`` uses the ``i``-th of ``jax.random.split(key, B)``,
            so a draw does not depend on the batch's layout over devices.
          clock: Kac times >= 0, shape ``(B,)``.
          shape: ``(B, ...)``.
          mesh: optional mesh that shards the batch; each device then draws its own
            rows (see :func:`per_example`).

        Returns:
          ``(noise, on_atom)`` of ``shape`` (float, bool).
        """
        size = math.prod(shape[1:])

        def one(k, s):  # flat draws: sampler blocks span the whole example
            x, on_atom = kac.sample(k, s, (size,), a=self.a, c=self.c)
            return x.reshape(shape[1:]), on_atom.reshape(shape[1:])

        keys = jax.random.split(key, shape[0])
        return per_example(one, mesh)(keys, jnp.broadcast_to(clock, shape[:1]))

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
          noise and its atom flag (never re-derived from ``x_t``).
        """
        t = t.astype(x0.dtype)
        clock = self.g(t)
        noise, on_atom = self.noise(key, clock, x0.shape, mesh=mesh)
        t, clock = (jnp.reshape(v, v.shape + (1,) * (x0.ndim - v.ndim)) for v in (t, clock))
        speed = kac.velocity(noise, clock, a=self.a, c=self.c, on_atom=on_atom)
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
    :func:`kacjax.training.parallel.size_cpu_thread_pools` prevents). Each example's result
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
