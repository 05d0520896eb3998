"""Classifier-free guidance in velocity space.

Convention: ``u_w = (1 + w) u(x, t, y) - w u(x, t, null)``; ``w = 0`` is plain
conditional sampling. The other common reading, ``u_null + s (u_y - u_null)``,
is the same with ``s = 1 + w``. Both velocities are bounded, so
``|u_w| <= (1 + 2|w|) * bound``. The null label is ``num_classes``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def drop_labels(key, labels, rate: float, null_label: int):
    """Replaces each label by ``null_label`` with probability ``rate``; shapes ``(B,)``."""
    drop = jax.random.bernoulli(key, rate, labels.shape)
    return jnp.where(drop, null_label, labels).astype(labels.dtype)


def guided(apply_velocity, x, t, labels, w, null_label: int):
    """Guided velocity, both branches in one batched network call.

    Args:
      apply_velocity: ``(x, t, labels) -> u`` for a batch.
      x: states ``(B, ...)``; t: times ``(B,)``; labels: ``(B,)`` int.
      w: guidance weight (scalar). A Python ``0`` skips the unconditional branch.
      null_label: label index of the unconditional model.

    Returns:
      ``(1 + w) u(x, t, y) - w u(x, t, null)``, shape of ``x``.
    """
    if isinstance(w, (int, float)) and w == 0:
        return apply_velocity(x, t, labels)
    # Each example's two branches sit in adjacent rows (2i, 2i + 1), so a batch sharded
    # over devices stays sharded the same way: no cross-device traffic.
    pair = lambda a, b: jnp.stack([a, b], axis=1).reshape(2 * a.shape[0], *a.shape[1:])  # noqa: E731
    both = apply_velocity(pair(x, x), pair(t, t), pair(labels, jnp.full_like(labels, null_label)))
    both = both.reshape(x.shape[0], 2, *x.shape[1:])
    return (1.0 + w) * both[:, 0] - w * both[:, 1]


def network_passes_per_velocity(w, null_label) -> int:
    """Network rows evaluated per example for one guided velocity: 2 when guided, else 1.

    Guidance with ``w != 0`` on a conditional model (``null_label`` not None) evaluates
    the conditional and the unconditional branch; ``w = 0`` or an unconditional model
    evaluates one.
    """
    return 2 if null_label is not None and w != 0 else 1


def velocity_field(model, params, labels, *, w, null_label):
    """``u(x, t)`` for the samplers: the network at time ``t`` (scalar or ``(B,)``), guided when ``w != 0``.

    Args:
      model: a velocity network (``model.apply({'params': p}, x, t, y, train=False)``).
      params: its parameters.
      labels: ``(B,)`` int, or None for an unconditional model.
      w: guidance weight (Python float: ``0`` makes one network call per velocity).
      null_label: the unconditional label index, or None for an unconditional model.
    """

    def apply(x, t_batch, y):
        return model.apply({"params": params}, x, t_batch, y, train=False)

    def u(x, t):
        t_batch = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
        if null_label is None:
            return apply(x, t_batch, None)
        return guided(apply, x, t_batch, labels, w, null_label)

    return u
