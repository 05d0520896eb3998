"""Classifier-free guidance in velocity space.

Convention: ``u_w = (1 + w) u(x, t, y) - w u(x, t, null)``; ``w = 0`` is plain
conditional sampling. The other common reading, ``u_null + s (u_y - u_null)``,
is the same with ``s = 1 + w``. Both velocities are bounded, so
``|u_w| <= (1 + 2|w|) * bound``. The null label is ``num_classes``. A
guidance-conditioned student (a model with ``w_embedding``) takes ``w`` as an input
instead and gives ``u_w`` in one conditional pass. How a velocity is guided is a
:class:`Guidance` value, made once (:meth:`Guidance.for_model`) and passed down.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp


def drop_labels(key, labels, rate: float, null_label: int):
    """Replaces each label by ``null_label`` with probability ``rate``; shapes ``(B,)``."""
    drop = jax.random.bernoulli(key, rate, labels.shape)
    return jnp.where(drop, null_label, labels).astype(labels.dtype)


NONE, CLASSIFIER_FREE, INPUT = "none", "classifier_free", "input"
KINDS = (NONE, CLASSIFIER_FREE, INPUT)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["w"], meta_fields=["kind"])
@dataclasses.dataclass(frozen=True)
class Guidance:
    """How a velocity is guided: a jit-static ``kind`` and a weight ``w`` (a pytree leaf, so it may be
    traced: every weight of one kind runs the same compiled program).

    Attributes:
      kind: ``"none"``: the network once, on the labels given (conditional sampling, an unconditional
        model, a student whose guidance is baked in); ``"classifier_free"``: ``(1 + w) u_y - w u_null``,
        both branches in one batched call (two network rows per example); ``"input"``: a
        guidance-conditioned network takes ``w`` as an input (one pass).
      w: the weight, a scalar or ``(B,)`` one per example (unused by ``"none"``).
    """

    kind: str = NONE
    w: Any = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"guidance kind {self.kind!r} not in {KINDS}")

    @classmethod
    def for_model(cls, model, w) -> "Guidance":
        """The guidance ``model`` is sampled with at weight ``w``: ``"input"`` when it takes ``w``
        (:func:`takes_w`), ``"none"`` when it is unconditional or ``w`` is the number 0 (the weight is
        known when the guidance is made), else ``"classifier_free"``. ``w`` may be a ``(B,)`` array."""
        if takes_w(model):
            return cls(INPUT, w)
        if null_label_of(model) is None or (isinstance(w, (int, float)) and w == 0):
            return cls(NONE, 0.0)
        return cls(CLASSIFIER_FREE, w)

    @property
    def network_passes(self) -> int:
        """Network rows evaluated per example for one guided velocity: 2 for classifier-free guidance, else 1."""
        return 2 if self.kind == CLASSIFIER_FREE else 1


def guided(apply_velocity, x, t, labels, w, null_label: int):
    """Classifier-free guided velocity, both branches in one batched network call.

    Args:
      apply_velocity: ``(x, t, labels) -> u`` for a batch.
      x: states ``(B, ...)``; t: times ``(B,)``; labels: ``(B,)`` int.
      w: guidance weight: a scalar, or ``(B,)`` one per example.
      null_label: label index of the unconditional model.

    Returns:
      ``(1 + w) u(x, t, y) - w u(x, t, null)``, shape of ``x``.
    """
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


def velocity_field(model, params, labels, guidance: Guidance):
    """``u(x, t)`` for the samplers: the network at time ``t`` (scalar or ``(B,)``), guided by ``guidance``.

    Args:
      model: a velocity network (``model.apply({'params': p}, x, t, y, w, train=False)``).
      params: its parameters.
      labels: ``(B,)`` int, or None for an unconditional model.
      guidance: a :class:`Guidance` (:meth:`Guidance.for_model`).
    """
    null_label = null_label_of(model)

    def apply(x, t_batch, y, w_in=None):
        return model.apply({"params": params}, x, t_batch, y, w_in, train=False)

    def u(x, t):
        t_batch = jnp.broadcast_to(jnp.asarray(t, x.dtype), (x.shape[0],))
        if guidance.kind == INPUT:
            return apply(x, t_batch, labels, jnp.broadcast_to(jnp.asarray(guidance.w, x.dtype), (x.shape[0],)))
        if guidance.kind == CLASSIFIER_FREE:
            return guided(apply, x, t_batch, labels, guidance.w, null_label)
        return apply(x, t_batch, labels)

    return u
