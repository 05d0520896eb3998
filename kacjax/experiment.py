"""Building blocks every mode shares: config checks, the flow, states and jitted steps."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp

from kacjax import parallel, samplers, train_state
from kacjax.checkpoint import CheckpointError, Checkpointer, abstract_like
from kacjax.flow import KacFlow
from kacjax.models import build_model


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"bad config: {message}")


def validate_config(config) -> None:
    """Raises ValueError naming the first impossible value in the config."""
    KacFlow.from_config(config.flow)
    tr = config.train
    _require(tr.batch_size > 0, f"train.batch_size must be > 0, got {tr.batch_size}")
    _require(tr.num_steps >= 0, f"train.num_steps must be >= 0, got {tr.num_steps}")
    _require(0.0 <= tr.ema_decay < 1.0, f"train.ema_decay must be in [0, 1), got {tr.ema_decay}")
    _require(0.0 <= tr.label_dropout < 1.0, f"train.label_dropout must be in [0, 1), got {tr.label_dropout}")
    _require(tr.learning_rate > 0, f"train.learning_rate must be > 0, got {tr.learning_rate}")
    for name in ("log_every", "checkpoint_every", "keep_checkpoints"):
        _require(tr[name] >= 1, f"train.{name} must be >= 1, got {tr[name]}")
    samplers.check_method(config.sample.method)
    _require(config.sample.steps >= 1, f"sample.steps must be >= 1, got {config.sample.steps}")
    nc = config.model.get("num_classes")
    _require(nc is None or nc >= 1, f"model.num_classes must be None or >= 1, got {nc}")


def check_data_matches_model(data_num_classes, model_cfg) -> None:
    """A conditional model needs labelled data with the same number of classes."""
    nc = model_cfg.get("num_classes")
    if nc is not None and data_num_classes != nc:
        raise ValueError(
            f"model.num_classes={nc} but the dataset has {data_num_classes} classes "
            "(use None for an unconditional model)"
        )


def null_label(model_cfg):
    """The label index meaning 'no class' (``num_classes``), or None when unconditional."""
    return model_cfg.get("num_classes")


def build_flow(config) -> KacFlow:
    return KacFlow.from_config(config.flow)


def _example_inputs(shape, conditional: bool):
    x = jnp.zeros((1, *shape), jnp.float32)
    t = jnp.zeros((1,), jnp.float32)
    y = jnp.zeros((1,), jnp.int32) if conditional else None
    return x, t, y


def make_init(model, tx, shape, conditional: bool):
    """``rng -> TrainState`` with freshly initialised parameters."""

    def init(rng):
        k_params, k_state = jax.random.split(rng)
        # An RBG key: XLA:CPU compiles the per-parameter streams ~3x faster than threefry.
        k_params = jax.random.wrap_key_data(jnp.concatenate([k_params, k_params]), impl="rbg")
        x, t, y = _example_inputs(shape, conditional)
        params = model.init({"params": k_params, "dropout": k_params}, x, t, y, train=False)["params"]
        return train_state.create(params, tx, k_state)

    return init


def create_state(model, tx, shape, conditional: bool, seed: int, mesh):
    """A new state, initialised directly with replicated sharding on ``mesh``."""
    init = make_init(model, tx, shape, conditional)
    return jax.jit(init, out_shardings=parallel.replicated(mesh))(jax.random.PRNGKey(seed))


def abstract_state(model, tx, shape, conditional: bool, mesh):
    """Shapes and shardings of a state, for restoring without initialising."""
    init = make_init(model, tx, shape, conditional)
    return abstract_like(jax.eval_shape(init, jax.random.PRNGKey(0)), parallel.replicated(mesh))


def jit_step(step_fn, mesh):
    """Jits ``(state, batch, *rest) -> (state, metrics)``: state donated and replicated."""
    repl = parallel.replicated(mesh)
    return jax.jit(step_fn, out_shardings=(repl, repl), donate_argnums=0)


def _canonical(section) -> str:
    return json.dumps(section.to_dict() if hasattr(section, "to_dict") else section, sort_keys=True)


def restore_or_create(checkpointer: Checkpointer, config, model, tx, shape, conditional, mesh, fresh):
    """Resumes from the latest checkpoint if any (checking the model and flow match), else ``fresh()``."""
    if checkpointer.latest_step() is None:
        return fresh()
    saved = checkpointer.read_meta()["config"]
    for section in ("model", "flow"):
        if _canonical(saved[section]) != _canonical(config[section]):
            raise CheckpointError(
                f"{checkpointer.directory} holds a checkpoint for {section}={_canonical(saved[section])}, "
                f"but the config asks for {section}={_canonical(config[section])}; use another workdir "
                "or the original config"
            )
    return checkpointer.restore(abstract_state(model, tx, shape, conditional, mesh))


def build_model_checked(config, data_num_classes):
    check_data_matches_model(data_num_classes, config.model)
    return build_model(config.model)
