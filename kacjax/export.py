"""The ``sample`` mode: a PNG grid and an ``.npz`` of samples from a checkpoint."""

from __future__ import annotations

import os

import jax
import numpy as np

from kacjax import api, images, logs


def sample_to_files(config, workdir: str) -> str:
    """Samples with ``config.sample`` settings; returns the path prefix written.

    Writes ``workdir/samples/<stage>_<method><steps>_w<w>.png`` (images only) and
    ``.npz`` (``x`` in ``[-1, 1]``, ``labels``). ``config.sample.labels = -1`` cycles
    through the classes; another value gives every sample that label.
    """
    s = config.sample
    gen = api.load(workdir, stage=s.stage)
    labels = None if (gen.num_classes is None or s.labels == -1) else s.labels
    x = gen.sample(
        jax.random.PRNGKey(config.seed + 1), s.num, labels,
        steps=None if gen.is_student else s.steps,
        sampler=None if gen.is_student else s.method,
        w=None if gen.is_student else s.w,
        batch_size=s.batch_size, progress=jax.process_index() == 0,
    )
    used = gen.labels_for(s.num, labels)
    name = os.path.basename(gen.directory)
    method, steps = (gen.default_method, gen.default_steps) if gen.is_student else (s.method, s.steps)
    w = "baked" if gen.is_student else f"{s.w:g}"
    out_dir = os.path.join(workdir, "samples")
    prefix = os.path.join(out_dir, f"{name}_{method}{steps}_w{w}")
    if jax.process_index() == 0:
        os.makedirs(out_dir, exist_ok=True)
        np.savez(prefix + ".npz", x=x, labels=np.asarray([] if used is None else used))
        if len(gen.shape) == 3:
            cols = gen.num_classes if gen.num_classes and s.num % gen.num_classes == 0 else None
            images.save_png(prefix + ".png", x, cols=cols, scale=max(1, 64 // gen.shape[0]))
        logs.info(f"wrote {prefix}.png and .npz")
    return prefix
