"""A trained teacher or student loaded from its checkpoint directory, without its data."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax.numpy as jnp
from ml_collections import ConfigDict

from kacjax.core.flow import KacFlow
from kacjax.core.guidance import null_label_of
from kacjax.models import build_model
from kacjax.runtime import parallel
from kacjax.training import rundir, setup, train_state
from kacjax.training.checkpoint import Checkpointer


@dataclasses.dataclass(frozen=True)
class Trained:
    """The EMA network of one checkpoint directory and what its metadata says about it.

    Attributes:
      directory: the checkpoint directory; meta: its JSON (:mod:`kacjax.training.rundir`).
      model, flow: rebuilt from the saved config; params: the EMA parameters (replicated).
      step: the checkpoint's step.
    """

    directory: str
    meta: dict
    model: Any
    flow: KacFlow
    params: Any
    step: int

    @classmethod
    def load(cls, directory: str, *, mesh=None, dtype=None):
        """Restores the newest intact checkpoint of ``directory`` (onto ``mesh``, default all devices).

        ``dtype``: the network's compute dtype (e.g. ``"float32"``); None keeps the saved config's.
        """
        checkpointer = Checkpointer(directory)
        meta = checkpointer.read_meta()
        config = ConfigDict(meta["config"])
        model = build_model(config.model)
        if dtype is not None and hasattr(model, "dtype"):
            model = model.clone(dtype=jnp.dtype(dtype))
        shape = tuple(meta["data"]["shape"])
        abstract = setup.abstract_state(model, train_state.make_optimizer(config.train), shape,
                                        mesh or parallel.make_mesh())
        step, state = checkpointer.restore_newest_intact(abstract)
        return cls(directory, checkpointer.read_meta(step), model, KacFlow.from_config(config.flow),
                   state.ema_params, step)

    @property
    def config(self) -> ConfigDict:
        """The config that trained it (a student's ``model`` and ``flow`` are its teacher's)."""
        return ConfigDict(self.meta["config"])

    @property
    def shape(self) -> tuple:
        """Per-example shape, e.g. ``(8, 8, 1)``."""
        return tuple(self.meta["data"]["shape"])

    @property
    def num_classes(self) -> Optional[int]:
        return self.meta["data"]["num_classes"]

    @property
    def null_label(self) -> Optional[int]:
        """The unconditional label index, or None for an unconditional model."""
        return null_label_of(self.model)

    @property
    def provenance(self) -> Optional[dict]:
        """A student's ``student`` metadata (stage, teacher, ``w``, inner sampler, ...); None for a teacher."""
        return self.meta.get("student")

    @property
    def is_student(self) -> bool:
        return self.provenance is not None

    @property
    def sampling(self) -> rundir.Sampling:
        """The sampler, steps and guidance weight it was trained to be sampled with."""
        return rundir.sampling_of(self.meta)
