"""The modes that only read checkpoints: ``sample`` (a PNG grid and an ``.npz`` of samples),
``evaluate`` (the report of the config's dataset) and ``fid_stats`` (the FID reference
statistics of the dataset).

Each mode is a pair: ``check_<mode>_config(config, mesh)`` raises ValueError for a value the mode
cannot use, before any work; ``<mode>(config, workdir)`` does the work of a config its check
passed (:func:`kacjax.run` and the command line check every mode first, then run them).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import jax
import numpy as np

from kacjax.core import samplers
from kacjax.evaluation import images
from kacjax.evaluation.generator import load
from kacjax.evaluation.reports import digits, image_fid, toy2d
from kacjax.evaluation.reports.fid_reference import ReferenceSettings, reference_statistics
from kacjax.runtime import logs, parallel
from kacjax.training.rundir import RunDir

# dataset name -> its report, a module with check(config, mesh) and run(config, workdir)
REPORTS = {"toy2d": toy2d, "digits": digits, **{name: image_fid for name in ("cifar10", "celeb_a", "lsun/bedroom")}}


def check_sample_config(config, mesh) -> None:
    """Raises ValueError naming the first impossible value of ``config.sample``.

    ``stage`` may name the teacher (0), a stage of the configured chain (1..len), or -1.
    ``mesh``: unused (the samples are drawn on one device).
    """
    del mesh
    s = config.sample
    samplers.check_method(s.method)
    for name in ("steps", "num", "batch_size"):
        if not (isinstance(s[name], int) and s[name] >= 1):
            raise ValueError(f"bad config: sample.{name} must be an integer >= 1, got {s[name]!r}")
    num_classes = config.model.get("num_classes")
    if s.labels != -1 and not (isinstance(s.labels, int) and num_classes and 0 <= s.labels < num_classes):
        classes = f"a class in [0, {num_classes})" if num_classes else "-1 (the model is unconditional)"
        raise ValueError(f"bad config: sample.labels must be -1 (cycle the classes) or {classes}, got {s.labels!r}")
    num_stages = len(config.distill.student_steps)
    if not (isinstance(s.stage, int) and -1 <= s.stage <= num_stages):
        raise ValueError(f"bad config: sample.stage must be -1 (last), 0 (teacher) or a stage 1..{num_stages} "
                         f"of the chain, got {s.stage!r}")


def sample(config, workdir: str) -> str:
    """The ``sample`` mode: samples with ``config.sample`` settings; returns the path prefix written.

    Writes ``workdir/samples/<stage>_<method><steps>_w<w>.png`` (images only) and
    ``.npz`` (``x`` in ``[-1, 1]``, ``labels``). ``config.sample.labels = -1`` cycles
    through the classes; another value gives every sample that label. A student is
    sampled on its own grid, with its baked-in guidance or, guidance-conditioned, with
    ``sample.w``.
    """
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


def _report(config):
    name = config.data.name
    if name not in REPORTS:
        raise ValueError(
            f"bad config: no built-in evaluation for dataset {name!r} (only {sorted(REPORTS)}); drop 'evaluate' "
            "from the pipeline"
        )
    return REPORTS[name]


def check_evaluate_config(config, mesh) -> None:
    """Raises ValueError when ``config.data.name`` has no report or its report cannot use ``config.evaluate``."""
    _report(config).check(config, mesh)


def evaluate(config, workdir: str) -> dict:
    """The ``evaluate`` mode: runs the report that fits ``config.data.name`` and returns it."""
    return _report(config).run(config, workdir)


def check_fid_stats_config(config, mesh) -> None:
    """The ``fid_stats`` mode needs a prepared image dataset and ``evaluate`` values its report can use
    (an ``evaluate.reference_stats`` file of other data is refused)."""
    if _report(config) is not image_fid:
        raise ValueError(f"bad config: FID reference statistics are for image datasets, not {config.data.name!r}")
    image_fid.check(config, mesh)


def fid_stats(config, workdir: str, *, devices: Optional[Sequence] = None) -> str:
    """The ``fid_stats`` mode: makes the reference statistics of the config's prepared data (once per
    preparation) on ``devices`` (default: all); returns their path.

    ``workdir`` is not used: the statistics belong to the data, at ``evaluate.reference_stats`` or in
    the cache (:class:`~kacjax.evaluation.reports.fid_reference.ReferenceSettings`).
    """
    del workdir
    reference = ReferenceSettings.from_config(config)
    reference_statistics(reference, parallel.make_mesh(devices))
    logs.info(f"reference statistics: {reference.path}")
    return reference.path
