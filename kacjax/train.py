"""Teacher training by Kac flow matching."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from kacjax import experiment, parallel, train_state
from kacjax.checkpoint import Checkpointer
from kacjax.data import build_input
from kacjax.flow import sample_times
from kacjax.guidance import drop_labels
from kacjax.logs import MetricWriter
from kacjax.loop import fit

TEACHER_DIR = "teacher"


def make_train_step(model, flow, tx, train_cfg, null_label, mesh=None):
    """``(state, batch) -> (state, metrics)`` for Kac flow matching (not jitted).

    batch: ``{'x': (B, ...) data in [-1, 1], 'label': (B,) int}``. Each example gets
    ``t ~ U[0, T]``, Kac noise and its exact target; labels are replaced by the null
    label with probability ``train_cfg.label_dropout`` (conditional models only).
    With the training ``mesh``, each device draws the noise of its own rows.
    """

    def step(state, batch):
        k_time, k_noise, k_label, k_dropout = jax.random.split(train_state.step_rng(state), 4)
        x0 = batch["x"]
        t = sample_times(k_time, x0.shape[0], flow)
        x_t, target = flow.corrupt(k_noise, x0, t, mesh=mesh)
        labels = None
        if null_label is not None:
            labels = drop_labels(k_label, batch["label"], train_cfg.label_dropout, null_label)

        def loss_fn(params):
            pred = model.apply({"params": params}, x_t, t, labels, train=True, rngs={"dropout": k_dropout})
            return jnp.mean(jnp.square(pred - target))

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return train_state.apply_gradients(state, loss, grads, tx, train_cfg.ema_decay)

    return step


def teacher_meta(config, data_shape, num_classes) -> dict:
    """JSON saved beside teacher checkpoints: enough to rebuild the model without data."""
    return {
        "role": "teacher",
        "config": config.to_dict(),
        "data": {"shape": list(data_shape), "num_classes": num_classes},
    }


def train_teacher(config, workdir: str, *, devices=None):
    """Trains (or resumes) the teacher in ``workdir/teacher``; returns the final state."""
    experiment.validate_config(config)
    mesh = parallel.make_mesh(devices)
    tr = config.train
    parallel.check_batch_size(tr.batch_size, mesh)
    data = build_input(
        config.data,
        global_batch_size=tr.batch_size,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    model = experiment.build_model_checked(config, data.num_classes)
    flow = experiment.build_flow(config)
    tx = train_state.make_optimizer(tr)
    null = experiment.null_label(config.model)
    conditional = null is not None
    checkpointer = Checkpointer(os.path.join(workdir, TEACHER_DIR), keep=tr.keep_checkpoints)
    state = experiment.restore_or_create(
        checkpointer, config, model, tx, data.shape, conditional, mesh,
        fresh=lambda: experiment.create_state(model, tx, data.shape, conditional, config.seed, mesh),
    )
    step_fn = experiment.jit_step(make_train_step(model, flow, tx, tr, null, mesh), mesh)
    state = fit(
        state,
        step_fn,
        data.iterate,
        mesh=mesh,
        num_steps=tr.num_steps,
        batch_size=tr.batch_size,
        checkpointer=checkpointer,
        meta=teacher_meta(config, data.shape, data.num_classes),
        writer=MetricWriter(os.path.join(workdir, TEACHER_DIR), prefix="teacher"),
        log_every=tr.log_every,
        checkpoint_every=tr.checkpoint_every,
        max_nonfinite_streak=tr.max_nonfinite_streak,
    )
    checkpointer.close()
    return state
