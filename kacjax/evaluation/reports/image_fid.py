"""The image report: FID and KID of the teacher and of every distilled stage.

Rows: the teacher with its configured sampler, steps and guidance weight (from its saved
metadata), every student on its own Euler grid with its baked-in guidance, and optionally
a guidance sweep of the teacher (FID against ``w`` for each of ``evaluate.sweep_samplers``).
Each row generates ``evaluate.num_samples`` images in global batches of
``evaluate.batch_size`` sharded over every device of every process: each device draws,
integrates, quantises and embeds its own rows (:mod:`~kacjax.evaluation.reports.feature_stream`).
A row saves its partial sums every ``evaluate.save_every`` batches and resumes from them after
a kill; finished rows are kept under ``eval/`` and skipped (against the same reference data).
Writes ``fid_report.{json,md,csv,png}``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from kacjax.core import samplers
from kacjax.data.identity import digest
from kacjax.evaluation import images
from kacjax.evaluation.artifacts import save, subplots, write_report
from kacjax.evaluation.generator import Generator
from kacjax.evaluation.metrics import fid, inception
from kacjax.evaluation.reports.feature_stream import accumulate, process_slice
from kacjax.evaluation.reports.fid_reference import ReferenceSettings, check_reference, reference_statistics
from kacjax.evaluation.reports.subject import Subject
from kacjax.evaluation.reports.sweep import check_sweep, sweep_points
from kacjax.evaluation.sampling import generate
from kacjax.runtime import logs, parallel
from kacjax.training.rundir import RunDir, has_checkpoint

NAME = "fid_report"
_COLUMNS = ("model", "sampler", "steps", "w", "network_passes", "fid", "kid", "kid_std", "seconds_per_1000",
            "max_speed", "nonfinite")


@dataclasses.dataclass(frozen=True)
class ImageSettings:
    """The only place the image report reads its config.

    Attributes:
      num_samples, batch_size, save_every: images per row, generated and embedded in global
        batches of ``batch_size``, partial sums saved every ``save_every`` batches.
      kid_features, kid_subsets, kid_subset_size: KID on the first ``kid_features`` features,
        over ``kid_subsets`` random subsets of ``kid_subset_size``.
      guidance_sweep, sweep_samplers: weights and samplers of the teacher's sweep at its own steps.
      seed: draws from ``seed + 101`` (folded with the batch), KID subsets from ``seed``.
      chain: ``distill.name``, the chain whose students are scored.
      reference: the dataset's reference statistics.
    """

    num_samples: int
    batch_size: int
    save_every: int
    kid_features: int
    kid_subsets: int
    kid_subset_size: int
    guidance_sweep: tuple
    sweep_samplers: tuple
    seed: int
    chain: str
    reference: ReferenceSettings

    @classmethod
    def from_config(cls, config) -> ImageSettings:
        ev = config.evaluate
        return cls(num_samples=ev.num_samples, batch_size=ev.batch_size, save_every=ev.save_every,
                   kid_features=ev.kid_features, kid_subsets=ev.kid_subsets, kid_subset_size=ev.kid_subset_size,
                   guidance_sweep=tuple(ev.guidance_sweep), sweep_samplers=tuple(ev.sweep_samplers),
                   seed=config.seed, chain=config.distill.name, reference=ReferenceSettings.from_config(config))


def check(config, mesh) -> None:
    """Raises ValueError for ``evaluate`` values this report cannot use, for a global batch that does
    not split over ``mesh``, for an ``evaluate.reference_stats`` file of other data, and
    FileNotFoundError without the FID weights (with the install command) or the prepared data."""
    s = ImageSettings.from_config(config)
    for name, least in (("num_samples", 2), ("batch_size", 1), ("kid_subsets", 1), ("kid_subset_size", 2),
                        ("kid_features", 2), ("save_every", 1)):
        value = getattr(s, name)
        if not (isinstance(value, int) and value >= least):
            raise ValueError(f"bad config: evaluate.{name} must be an integer >= {least}, got {value!r}")
    check_sweep(s.guidance_sweep, s.sweep_samplers)
    inception.locate_weights()  # missing FID weights: refused before any work, with the install command
    parallel.check_batch_size(s.batch_size, mesh)
    check_reference(s.reference)


@dataclasses.dataclass(frozen=True)
class RowSpec:
    """One row: ``gen`` sampled with ``method`` for ``steps`` steps at guidance ``w`` (ignored by a
    student with its guidance baked in), recorded as its ``subject``."""

    gen: Generator
    subject: Subject
    method: str
    steps: int
    w: float


def _row_id(spec: RowSpec, w: float, s: ImageSettings) -> str:
    """Names a row's files under ``eval/``: a row scored against other reference data is not reused."""
    baked = spec.gen.sampling.w_baked
    return (f"{os.path.basename(spec.gen.directory)}_{spec.method}{spec.steps}_w{'baked' if baked else f'{w:g}'}"
            f"_n{s.num_samples}_seed{s.seed}_ref{digest(s.reference.identity)}")


def _producer(spec: RowSpec, w: float, s: ImageSettings, mesh):
    """``b -> (sharded uint8 images of global batch b, extras)`` for :func:`accumulate`: timings (from the
    second batch, when compiled), non-finite samples and the largest velocity component."""
    gen = spec.gen
    labels_for = (lambda g: (g % gen.num_classes).astype(np.int32)) if gen.null_label is not None else None
    quantise = jax.jit(lambda x: (images.to_uint8(x, jnp), jnp.all(jnp.isfinite(x), axis=tuple(range(1, x.ndim)))))
    base_key = jax.random.PRNGKey(s.seed + 101)

    def produce(b):
        rows = np.arange(b * s.batch_size, (b + 1) * s.batch_size)
        labels = None if labels_for is None else parallel.shard_batch(process_slice(labels_for(rows)), mesh)
        start = time.perf_counter()
        out = generate(jax.random.fold_in(base_key, b), gen.params, labels, gen.guidance(w), model=gen.model,
                       flow=gen.flow, num=s.batch_size, shape=gen.shape, method=spec.method, steps=spec.steps,
                       track_speed=True, mesh=mesh)
        uint8, finite = quantise(out.x)
        jax.block_until_ready(uint8)
        seconds = time.perf_counter() - start
        speed, index = parallel.local_rows(out.max_speed)
        ok, _ = parallel.local_rows(finite)
        valid = index < s.num_samples
        timed = b > 0  # the first batch compiles
        counted = timed and jax.process_index() == 0  # wall time is the same on every process
        return uint8, {"seconds": seconds * counted, "timed_images": s.batch_size * counted,
                       "nonfinite": float(np.sum(~ok[valid] | ~np.isfinite(speed[valid]))),
                       "max_speed": np.nanmax(np.where(valid, speed, 0.0)) if valid.any() else 0.0}

    return produce


def score_row(spec: RowSpec, s: ImageSettings, layout: RunDir, reference, mesh) -> dict:
    """The row of ``spec`` against ``reference`` (``(mu, sigma, kid features, meta)``): made, or read
    back when ``eval/`` holds it finished."""
    gen, baked = spec.gen, spec.gen.sampling.w_baked
    w = gen.guidance_weight(None if baked else spec.w)
    row_id = _row_id(spec, w, s)
    done_path = layout.evaluation(row_id + ".json")
    if os.path.isfile(done_path):
        with open(done_path) as f:
            return json.load(f)
    produce = _producer(spec, w, s, mesh)
    logs.info(f"evaluate: {spec.subject.label} {spec.method} {spec.steps} steps w={w:g}: {s.num_samples} samples")
    moments, kid_feats, extra = accumulate(produce, s.num_samples, s.batch_size, mesh=mesh,
                                           kid_features=s.kid_features, partial=layout.evaluation(row_id + ".partial"),
                                           save_every=s.save_every, label=f"evaluate {spec.subject.label}")
    if extra["timed_images"] == 0:  # one batch only: time it again, compiled
        start = time.perf_counter()
        jax.block_until_ready(produce(0)[0])
        extra["seconds"], extra["timed_images"] = time.perf_counter() - start, s.batch_size
    mu, sigma = moments.mean_cov()
    ref_mu, ref_sigma, ref_kid, _ = reference
    kid, kid_std = fid.kernel_inception_distance(kid_feats, ref_kid, num_subsets=s.kid_subsets,
                                                 subset_size=s.kid_subset_size, seed=s.seed)
    nfe = samplers.nfe(spec.method, spec.steps)
    row = {**spec.subject.fields(), "run": os.path.basename(gen.directory), "sampler": spec.method, "steps": spec.steps,
           "w": gen.sampling.w if baked else w, "w_baked": baked, "nfe": nfe,
           "network_passes": nfe * gen.guidance(w).network_passes,
           "num_samples": moments.count, "fid": fid.frechet_distance(mu, sigma, ref_mu, ref_sigma),
           "kid": kid, "kid_std": kid_std,
           "seconds_per_1000": float(extra["seconds"] / extra["timed_images"] * 1000),
           "max_speed": float(extra["max_speed"]), "nonfinite": int(extra["nonfinite"])}
    logs.info(f"evaluate: {spec.subject.label} {spec.method} {spec.steps} steps: FID {row['fid']:.3f}, KID {kid:.5f}")
    if jax.process_index() == 0:
        with open(done_path, "w") as f:
            json.dump(row, f, indent=2)
    return row


def plan_rows(layout: RunDir, s: ImageSettings, mesh) -> tuple[list, list]:
    """``(main rows, sweep rows)``: the teacher and every stage of the chain as they were trained to be
    sampled; the teacher's sweep at its own steps."""
    teacher = Generator.load(layout.resolve(0), mesh=mesh)
    stages = (Generator.load(p, mesh=mesh) for p in layout.stages(s.chain) if has_checkpoint(p))
    main = [RowSpec(teacher, Subject(), *teacher.sampling[:3])]
    main += [RowSpec(gen, Subject.of(gen), *gen.sampling[:3]) for gen in stages]
    sweep = [RowSpec(teacher, Subject(sweep=True), method, teacher.sampling.steps, w)
             for method, w in sweep_points(s.guidance_sweep, s.sweep_samplers)]
    return main, sweep


def run(config, workdir: str, *, devices: Optional[Sequence] = None) -> dict:
    """Writes ``workdir/fid_report.{json,md,csv,png}`` and returns the report.

    ``devices``: where to generate and embed (default: all devices of all processes).
    """
    s = ImageSettings.from_config(config)
    layout, mesh = RunDir(workdir), parallel.make_mesh(devices)
    reference = reference_statistics(s.reference, mesh)
    main_specs, sweep_specs = plan_rows(layout, s, mesh)
    main = [score_row(spec, s, layout, reference, mesh) for spec in main_specs]
    sweep = [score_row(spec, s, layout, reference, mesh) for spec in sweep_specs]
    report = {"num_samples": s.num_samples, "protocol": fid.PROTOCOL, "reference": s.reference.path,
              "reference_data": s.reference.identity, "rows": main, "sweep": sweep}
    write_report(layout, NAME, report, table=(main + sweep, _COLUMNS),
                 files={f"{NAME}.png": functools.partial(_figure, main=main, sweep=sweep)})
    return report


def _figure(path, *, main, sweep) -> None:
    panels = 2 if sweep else 1
    fig, axes = subplots(panels, (5.2 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    is_student = lambda r: Subject.of_row(r).is_student  # noqa: E731
    students = sorted((r for r in main if is_student(r)), key=lambda r: r["nfe"])
    ax.plot([r["nfe"] for r in students], [r["fid"] for r in students], "s-", label="DistillKac students")
    for r in (r for r in main if not is_student(r)):
        ax.plot([r["nfe"]], [r["fid"]], "o", label=f"teacher ({r['sampler']}, w={r['w']:g})")
    ax.set(xscale="log", xlabel="NFE (sampling steps)", ylabel="FID", title="FID against NFE")
    nfes = sorted({r["nfe"] for r in main})
    ax.set_xticks(nfes, [str(n) for n in nfes])
    ax.minorticks_off()
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.legend(fontsize=7)
    if sweep:
        ax = axes[0, 1]
        for method in sorted({r["sampler"] for r in sweep}):
            pts = sorted((r["w"], r["fid"]) for r in sweep if r["sampler"] == method)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
        ax.set(xlabel="guidance weight w", ylabel="FID", title=f"teacher, {sweep[0]['steps']} steps")
        ax.legend(fontsize=7)
    save(fig, path)
