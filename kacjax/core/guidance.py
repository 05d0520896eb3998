"""Classifier-free guidance in velocity space.

Convention: ``u_w = (1 + w) u(x, t, y) - w u(x, t, null)``; ``w = 0`` is plain
conditional sampling. The other common reading, ``u_null + s (u_y - u_null)``,
is the same with ``s = 1 + w``. Both velocities are bounded, so
``|u_w| <= (1 + 2|w|) * bound``. The null label is ``num_classes``. A
guidance-conditioned student (a model with ``w_embedding``) takes ``w`` as an input
instead and gives ``u_w`` in one conditional pass.
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
      w: guidance weight: a scalar, or ``(B,)`` one per example. A Python ``0`` skips the
        unconditional branch.
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
    w = jnp.reshape(jnp.asarray(w, both.dtype), jnp.shape(w) + (1,) * (x.ndim - jnp.ndim(w)))  # (B,) -> (B, 1, ...)
    return (1.0 + w) * both[:, 0] - w * both[:, 1]


def null_label_of(model):
    """The unconditional label index of a velocity network (its ``num_classes``), or None when it is
    unconditional."""
    return getattr(model, "num_classes", None)


def takes_w(model) -> bool:
    """Whether ``model`` is guidance-conditioned: it takes ``w`` as an input (``w_embedding``)."""
    return bool(getattr(model, "w_embedding", False))


def two_branches(model, w, null_label) -> bool:
    """Whether the guided velocity evaluates both branches: ``w`` is not the Python number 0,
    the model is class-conditional (``null_label`` not None) and does not take ``w`` itself."""
    return null_label is not None and not takes_w(model) and not (isinstance(w, (int, float)) and w == 0)


def network_passes_per_velocity(model, w, null_label) -> int:
    """Network rows evaluated per example for one guided velocity: 2 with two branches
    (:func:`two_branches`), else 1."""
    return 2 if two_branches(model, w, null_label) else 1


def velocity_field(model, params, labels, *, w, null_label):
    """``u(x, t)`` for the samplers: the network at time ``t`` (scalar or ``(B,)``), guided with ``w``.

    Args:
      model: a velocity network (``model.apply({'params': p}, x, t, y, w, train=False)``).
      params: its parameters.
      labels: ``(B,)`` int, or None for an unconditional model.
      w: guidance weight, a scalar or ``(B,)``. A model that takes ``w`` (:func:`takes_w`)
        gets it as an input, one pass; otherwise classifier-free guidance evaluates both
        branches, unless ``w`` is the Python number 0.
      null_label: the unconditional label index, or None for an unconditional model.
    """

    def apply(x, t_batch, y, w_in=None):
        return model.apply({"params": params}, x, t_batch, y, w_in, train=False)

    def u(x, t):
        t_batch = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
        if takes_w(model):
            return apply(x, t_batch, labels, jnp.broadcast_to(jnp.asarray(w, x.dtype), (x.shape[0],)))
        if null_label is None:
            return apply(x, t_batch, None)
        return guided(apply, x, t_batch, labels, w, null_label)

    return u
