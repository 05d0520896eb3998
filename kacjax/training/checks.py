"""The checks of the sections a teacher run reads (``flow``, ``data``, ``model``, ``train``), apart
from the assembly of a run (:mod:`kacjax.training.setup`): every value is checked before any work.
"""

from __future__ import annotations

from kacjax.core.flow import KacFlow
from kacjax.data import build_source, check_data_config, example_shape
from kacjax.models import check_model
from kacjax.runtime import parallel


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"bad config: {message}")


def check_train_config(config, mesh=None) -> None:
    """Raises ValueError naming the first impossible value of ``flow``, ``data``, ``model`` or ``train``.

    With a ``mesh``, the global batch must also split evenly over its devices and the processes.
    """
    flow = KacFlow.from_config(config.flow)
    check_data_config(config.data)
    shape = example_shape(config.data)
    flow.check_example_shape(shape)
    nc = config.model.get("num_classes")
    _require(nc is None or nc >= 1, f"model.num_classes must be None or >= 1, got {nc}")
    dropout = config.model.get("dropout")
    _require(dropout is None or 0.0 <= dropout < 1.0, f"model.dropout must be in [0, 1), got {dropout}")
    check_model(config.model, shape)  # unknown names and fields; the UNet's levels, heads and GroupNorms
    tr = config.train
    _require(tr.batch_size > 0, f"train.batch_size must be > 0, got {tr.batch_size}")
    _require(tr.num_steps >= 1, f"train.num_steps must be >= 1, got {tr.num_steps}")
    _require(0.0 <= tr.ema_decay < 1.0, f"train.ema_decay must be in [0, 1), got {tr.ema_decay}")
    _require(0.0 <= tr.label_dropout < 1.0, f"train.label_dropout must be in [0, 1), got {tr.label_dropout}")
    for name in ("b1", "b2"):  # Adam's decay rates: 1 never forgets the first moment and trains on NaN
        _require(0.0 <= tr[name] < 1.0, f"train.{name} must be in [0, 1), got {tr[name]}")
    _require(tr.learning_rate > 0, f"train.learning_rate must be > 0, got {tr.learning_rate}")
    _require(tr.warmup_steps >= 0, f"train.warmup_steps must be >= 0, got {tr.warmup_steps}")
    for name in ("log_every", "checkpoint_every", "keep_checkpoints", "max_nonfinite_streak"):
        _require(tr[name] >= 1, f"train.{name} must be >= 1, got {tr[name]}")
    if mesh is not None:
        parallel.check_batch_size(tr.batch_size, mesh)
    source = build_source(config.data)  # the data itself: a dataset not prepared yet is refused here, before work
    check_data_matches_model(source.num_classes, config.model)
    size = source.num_examples
    _require(size is None or tr.batch_size <= size,
             f"train.batch_size={tr.batch_size} exceeds the dataset's {size} examples")


def check_data_matches_model(data_num_classes, model_cfg) -> None:
    """A conditional model needs labelled data with the same number of classes."""
    nc = model_cfg.get("num_classes")
    if nc is not None and data_num_classes != nc:
        raise ValueError(
            f"model.num_classes={nc} but the dataset has {data_num_classes} classes "
            "(use None for an unconditional model)"
        )
