"""The ``train`` mode: the teacher, trained (or resumed) by flow matching in ``workdir/teacher``."""

from __future__ import annotations

from typing import Optional, Sequence

from kacjax.runtime import logs
from kacjax.training import rundir, setup
from kacjax.training.checkpoint import Checkpointer
from kacjax.training.loop import fit_run


def train(config, workdir: str, *, devices: Optional[Sequence] = None):
    """The ``train`` mode: trains (or resumes) the teacher of ``workdir``; returns the final state.

    ``config`` has passed :func:`kacjax.training.checks.check_train_config` (:func:`kacjax.run`
    checks every mode first). The step is :func:`kacjax.training.steps.make_train_step`;
    checkpoints, metrics and the metadata go where :class:`kacjax.training.rundir.RunDir` says.
    """
    tr = config.train
    directory = rundir.RunDir(workdir).teacher
    checkpointer = Checkpointer(directory, keep=tr.keep_checkpoints)
    run = setup.teacher_run(config, devices=devices, checkpointer=checkpointer)
    flow = run.flow
    logs.info(f"train: the teacher on {flow.noise_name} noise (flow.noise_process={flow.noise_process}, "
              f"noise_dim={flow.noise_dim}, a={flow.a:g}, c={flow.c:g})")
    state = fit_run(run, tr, num_steps=tr.num_steps, checkpointer=checkpointer,
                    meta=rundir.teacher_meta(config, run.data.shape, run.data.num_classes), prefix="teacher")
    checkpointer.close()
    return state
