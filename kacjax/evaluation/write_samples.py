"""The ``sample`` mode: a PNG grid and an ``.npz`` of samples from a checkpoint."""

from __future__ import annotations

import os

import jax
import numpy as np

from kacjax.core import samplers
from kacjax.evaluation import images
from kacjax.evaluation.generator import load
from kacjax.training import logs
from kacjax.training.rundir import RunDir


def check_sample_config(config) -> None:
    """Raises ValueError naming the first impossible value of ``config.sample``.

    ``stage`` may name the teacher (0), a stage of the configured chain (1..len), or -1.
    """
    s = config.sample
    samplers.check_method(s.method)
    for name in ("steps", "num", "batch_size"):
        if not (isinstance(s[name], int) and s[name] >= 1):
            raise ValueError(f"bad config: sample.{name} must be an integer >= 1, got {s[name]!r}")
    num_stages = len(config.distill.student_steps)
    if not (isinstance(s.stage, int) and -1 <= s.stage <= num_stages):
        raise ValueError(f"bad config: sample.stage must be -1 (last), 0 (teacher) or a stage 1..{num_stages} "
                         f"of the chain, got {s.stage!r}")


def write_samples(config, workdir: str) -> str:
    """Samples with ``config.sample`` settings; returns the path prefix written.

    Writes ``workdir/samples/<stage>_<method><steps>_w<w>.png`` (images only) and
    ``.npz`` (``x`` in ``[-1, 1]``, ``labels``). ``config.sample.labels = -1`` cycles
    through the classes; another value gives every sample that label. A student is
    sampled on its own grid, with its baked-in guidance or, guidance-conditioned, with
    ``sample.w``.
    """
    check_sample_config(config)
    s = config.sample
    layout = RunDir(workdir)
    gen = load(workdir, stage=s.stage, chain=config.distill.name)
    labels = None if (gen.num_classes is None or s.labels == -1) else s.labels
    method, steps = (gen.default_method, gen.default_steps) if gen.is_student else (s.method, s.steps)
    baked = gen.sampling.w_baked
    logs.info(f"sampling {s.num} from {gen.directory} with {method}, {steps} steps")
    x = gen.sample(
        jax.random.PRNGKey(config.seed + 1), s.num, labels, steps=steps, sampler=method, w=None if baked else s.w,
        batch_size=s.batch_size, progress=jax.process_index() == 0,
    )
    used = gen.labels_for(s.num, labels)
    prefix = layout.samples(gen.directory, method, steps, "baked" if baked else f"{s.w:g}")
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        np.savez(prefix + ".npz", x=x, labels=np.asarray([] if used is None else used))
        if len(gen.shape) == 3:
            cols = gen.num_classes if gen.num_classes and s.num % gen.num_classes == 0 else None
            images.save_png(prefix + ".png", x, cols=cols, scale=max(1, 64 // gen.shape[0]))
        logs.info(f"wrote {prefix}.png and .npz")
    return prefix
