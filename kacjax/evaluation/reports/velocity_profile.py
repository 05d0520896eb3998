"""Speeds near the data end: the Kac flow against its Brownian (diffusion) limit.

The noise part of the flow-matching target is ``g'(t) v(g(t), K)``, with ``v`` the Kac
velocity ``E[V | K = x]``, bounded by ``c``. In the diffusion limit (``a, c -> inf`` with
``c^2 / a = sigma^2``) the noise is ``sigma W`` and its velocity is ``x / (2 s)``, whose
RMS over ``x ~ sigma W(s)`` is ``sigma / (2 sqrt(s))``: it grows without bound as the
noise clock ``s -> 0``, the data end (random flights have the same limit, with their own
``sigma``). :func:`noise_speeds` measures the flow's own noise (``flow.noise_process``) with its exact
sampler; :func:`teacher_speeds` measures what a trained network learned, along its own sampling path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kacjax.core.guidance import velocity_field


def noise_speeds(key, clocks, flow, *, num: int = 4096) -> dict:
    """RMS and largest per-coordinate ``|v(s, K(s))|`` over ``num`` exact noise coordinates at each
    noise clock ``s``, for the flow's noise (``flow.noise_process`` and ``flow.noise_dim``).

    Args:
      key: PRNG key; clocks: ``(S,)`` noise times ``s > 0``; flow: the :class:`~kacjax.core.flow.KacFlow`.

    Returns:
      ``{"clock", "kac_rms", "kac_max", "brownian_rms", "c", "noise"}``: lists of length ``S``
      (``brownian_rms = sigma / (2 sqrt(s))`` with ``sigma^2`` the noise's per-coordinate limit
      variance rate), the speed bound ``c`` (None for the Gaussian families, which have none) and
      the noise's name.
    """
    s = jnp.asarray(clocks, jnp.float32)
    x, on_boundary = flow.noise(key, s, (s.shape[0], num))
    speed = np.abs(np.asarray(flow.noise_velocity(x, s, on_boundary)))
    sigma = np.sqrt(flow.limit_variance_rate)
    return {"clock": np.asarray(clocks, float).tolist(),
            "kac_rms": np.sqrt(np.mean(np.square(speed), axis=1)).tolist(),
            "kac_max": np.max(speed, axis=1).tolist(),
            "brownian_rms": (sigma / (2.0 * np.sqrt(np.asarray(clocks, float)))).tolist(), "c": flow.speed_bound,
            "noise": flow.noise_name}


def teacher_speeds(gen, trajectory, times, labels, w: float) -> dict:
    """RMS and largest ``|u_theta|`` of ``gen``'s guided velocity at each state of a sampling path.

    Args:
      gen: a :class:`~kacjax.evaluation.generator.Generator`.
      trajectory: ``(S, n, ...)`` states at ``times`` ``(S,)``; labels: ``(n,)`` or None.
      w: the guidance weight the path was sampled with.

    Returns:
      ``{"t", "rms", "max", "bound"}``: lists of length ``S`` and the bound of the guided
      target, ``(1 + 2|w|) (max|f'| + max g' c)`` (data in ``[-1, 1]``), None for a noise
      without a speed bound.
    """
    u = jax.jit(velocity_field(gen.model, gen.params_for(None), labels, gen.guidance(w)))
    speeds = [np.abs(np.asarray(u(x, t))) for x, t in zip(trajectory, np.asarray(times))]
    flow = gen.flow
    grid = jnp.linspace(0.0, flow.T, 101)
    scale = 1.0 + 2.0 * abs(gen.sampling.w if gen.sampling.w_baked else w)  # a baked-in w guides too
    bound = None
    if flow.speed_bound is not None:
        bound = scale * float(jnp.max(jnp.abs(flow.df(grid))) + jnp.max(flow.dg(grid)) * flow.speed_bound)
    return {"t": np.asarray(times, float).tolist(), "rms": [float(np.sqrt(np.mean(v * v))) for v in speeds],
            "max": [float(v.max()) for v in speeds], "bound": bound}
