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
    both = apply_velocity(
        jnp.concatenate([x, x]),
        jnp.concatenate([t, t]),
        jnp.concatenate([labels, jnp.full_like(labels, null_label)]),
    )
    cond, uncond = jnp.split(both, 2)
    return (1.0 + w) * cond - w * uncond
