"""The ``evaluate`` mode on image datasets: FID and KID of the teacher and of every distilled stage.

Rows: the teacher with its configured sampler, steps and guidance weight (from its saved
metadata), every student on its own Euler grid with its baked-in guidance, and optionally
a guidance sweep of the teacher (FID against ``w`` for each of ``evaluate.sweep_samplers``).
Each row generates ``evaluate.num_samples`` images in global batches of
``evaluate.batch_size`` sharded over every device of every process: each device draws,
integrates, quantises and embeds its own rows; only features reach the host, where this
process's moments accumulate in float64 (summed over processes at the end). A row saves
its partial sums every ``evaluate.save_every`` batches and resumes from them after a
kill; finished rows are kept and skipped. Writes ``fid_report.{json,md,csv,png}``.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from kacjax.core import samplers
from kacjax.core.guidance import network_passes_per_velocity
from kacjax.data import build_source
from kacjax.evaluation import fid, images, inception, plots
from kacjax.evaluation.generator import Generator
from kacjax.evaluation.sampling import check_guidance_sweep, generate
from kacjax.evaluation.tables import markdown_table, write_csv
from kacjax.training import logs, parallel
from kacjax.training.rundir import RunDir, has_checkpoint

_COLUMNS = ("model", "sampler", "steps", "w", "network_passes", "fid", "kid", "kid_std", "seconds_per_1000",
            "max_speed", "nonfinite")


def check_config(config) -> None:
    """Raises ValueError for ``evaluate`` values this report cannot use."""
    ev = config.evaluate
    for name, least in (("num_samples", 2), ("batch_size", 1), ("kid_subsets", 1), ("kid_subset_size", 2),
                        ("kid_features", 2), ("save_every", 1)):
        if not (isinstance(ev[name], int) and ev[name] >= least):
            raise ValueError(f"bad config: evaluate.{name} must be an integer >= {least}, got {ev[name]!r}")
    check_guidance_sweep(ev.guidance_sweep, ev.sweep_samplers)
    inception.locate_weights()  # missing FID weights: refused before any work, with the install command


def reference_path(config) -> str:
    """``evaluate.reference_stats``, or a cache file named by the dataset, split and protocol."""
    if config.evaluate.reference_stats:
        return os.path.expanduser(config.evaluate.reference_stats)
    d = config.data
    name = (d.get("tfds_name") or d.name).replace("/", "_")
    split = str(d.get("split") or "train").replace("/", "_").replace(":", "_")
    return os.path.join(inception.cache_dir(), "fid_stats", f"{name}_{split}_{fid.PROTOCOL.replace('/', '_')}.npz")


def _save_partial(path, state: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **state)
    os.replace(tmp, path)  # atomic: a kill leaves the previous partial sums


def _stream(produce, num: int, batch_size: int, *, mesh, kid_features: int, partial: str, save_every: int,
            label: str):
    """Embeds ``ceil(num / batch_size)`` global batches ``produce(b)`` (sharded uint8 images) and
    returns ``(moments, kid features, extras)`` over all processes.

    ``produce(b)`` returns ``(images, extras)``: a dict of numbers that add up over batches
    and processes (timings, counts), except ``max_*`` keys, whose maximum is kept. This
    process's sums are saved to ``partial`` (one file per process) every ``save_every``
    batches and resumed from.
    """
    suffix = f".p{jax.process_index()}of{jax.process_count()}" if jax.process_count() > 1 else ""
    partial = partial + suffix + ".npz"
    moments, kid, kid_index, extras, start = fid.Moments(), [], [], {}, 0
    if os.path.isfile(partial):
        with np.load(partial) as saved:
            start, moments.count = int(saved["batches"]), int(saved["count"])
            moments.total, moments.outer = saved["total"], saved["outer"]
            kid, kid_index = [saved["kid"]], [saved["kid_index"]]
            extras = {k[len("extra_"):]: saved[k] for k in saved.files if k.startswith("extra_")}
        logs.info(f"{label}: resuming at batch {start}")
    embed = fid.embedder(mesh)
    batches = -(-num // batch_size)
    for b in range(start, batches):
        images_b, extra = produce(b)
        rows, index = parallel.local_rows(embed(images_b))
        keep = index < num
        moments.add(rows[keep])
        kid.append(rows[keep & (index < kid_features)])
        kid_index.append(index[keep & (index < kid_features)])
        for k, v in extra.items():
            v = np.asarray(v, np.float64)
            extras[k] = v if k not in extras else (np.maximum if k.startswith("max_") else np.add)(extras[k], v)
        done = b + 1
        if done % save_every == 0 or done == batches:
            _save_partial(partial, dict(batches=done, count=moments.count, total=moments.total, outer=moments.outer,
                                        kid=np.concatenate(kid), kid_index=np.concatenate(kid_index),
                                        **{f"extra_{k}": v for k, v in extras.items()}))
            logs.info(f"{label}: {min(done * batch_size, num)}/{num} images")
    sums = {k: v for k, v in extras.items() if not k.startswith("max_")}
    summed = parallel.process_sum({"count": np.asarray(moments.count, np.int64), "total": moments.total,
                                   "outer": moments.outer, **sums})
    moments.count, moments.total, moments.outer = int(summed["count"]), summed["total"], summed["outer"]
    kid_all = parallel.gather_rows(np.concatenate(kid), np.concatenate(kid_index))  # global order, any layout
    maxes = {k: v for k, v in extras.items() if k.startswith("max_")}
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        maxes = {k: np.max(np.asarray(multihost_utils.process_allgather(np.float32(v)))) for k, v in maxes.items()}
    os.remove(partial)  # the caller keeps the result; a kill before that only redoes this row
    return moments, kid_all, {**{k: summed[k] for k in sums}, **maxes}


def _process_slice(global_rows: np.ndarray) -> np.ndarray:
    per = len(global_rows) // jax.process_count()
    return global_rows[jax.process_index() * per:(jax.process_index() + 1) * per]


def reference_statistics(config, mesh):
    """``(mu, sigma, kid features, meta)`` of the config's dataset, computed once and cached.

    The whole split (``config.data``; unshuffled, unflipped), quantised back to uint8,
    sharded over all devices; written to :func:`reference_path` by process 0.
    """
    path = reference_path(config)
    if os.path.isfile(path):
        mu, sigma, meta = fid.load_statistics(path)
        with np.load(path) as stored:
            return mu, sigma, stored["kid_features"], meta
    ev = config.evaluate
    source = build_source(config.data)
    n = source.num_examples
    logs.info(f"FID reference statistics of {n} images of {config.data.name} -> {path}")

    def produce(b):
        rows = _process_slice(np.arange(b * ev.batch_size, (b + 1) * ev.batch_size))
        x, _ = source.read(np.minimum(rows, n - 1))
        return parallel.shard_batch(images.to_uint8(x), mesh), {}

    moments, kid, _ = _stream(produce, n, ev.batch_size, mesh=mesh, kid_features=ev.kid_features,
                              partial=path + ".partial",
                              save_every=ev.save_every, label="reference")
    mu, sigma = moments.mean_cov()
    if jax.process_index() == 0:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fid.save_statistics(path, mu, sigma, moments.count, source=f"{config.data.to_dict()}",
                            kid_features=kid)
    return mu, sigma, kid, {"count": moments.count}


def write_reference_statistics(config, workdir: str, *, devices=None) -> str:
    """The ``fid_stats`` mode: makes the reference statistics of the config's dataset (once); returns the path.

    ``workdir`` is not used: the statistics belong to the dataset, at :func:`reference_path`.
    """
    del workdir
    check_config(config)
    mesh = parallel.make_mesh(devices)
    parallel.check_batch_size(config.evaluate.batch_size, mesh)
    reference_statistics(config, mesh)
    logs.info(f"reference statistics: {reference_path(config)}")
    return reference_path(config)


def _row(gen: Generator, name: str, method: str, steps: int, w: float, config, layout: RunDir, reference, mesh):
    ev = config.evaluate
    baked = gen.sampling.w_baked
    w = gen.guidance_weight(None if baked else w)
    row_id = f"{os.path.basename(gen.directory)}_{method}{steps}_w{'baked' if baked else f'{w:g}'}" \
             f"_n{ev.num_samples}_seed{config.seed}"
    done_path = layout.evaluation(row_id + ".json")
    if os.path.isfile(done_path):
        with open(done_path) as f:
            return json.load(f)
    labels_for = (lambda g: (g % gen.num_classes).astype(np.int32)) if gen.null_label is not None else None
    quantise = jax.jit(lambda x: (images.to_uint8(x, jnp), jnp.all(jnp.isfinite(x), axis=tuple(range(1, x.ndim)))))
    base_key = jax.random.PRNGKey(config.seed + 101)

    def produce(b):
        rows = np.arange(b * ev.batch_size, (b + 1) * ev.batch_size)
        labels = None if labels_for is None else parallel.shard_batch(_process_slice(labels_for(rows)), mesh)
        start = time.perf_counter()
        out = generate(jax.random.fold_in(base_key, b), gen.params, labels, w, model=gen.model, flow=gen.flow,
                       num=ev.batch_size, shape=gen.shape, method=method, steps=steps, null_label=gen.null_label,
                       track_speed=True, mesh=mesh)
        uint8, finite = quantise(out.x)
        jax.block_until_ready(uint8)
        seconds = time.perf_counter() - start
        speed, index = parallel.local_rows(out.max_speed)
        ok, _ = parallel.local_rows(finite)
        valid = index < ev.num_samples
        timed = b > 0  # the first batch compiles
        counted = timed and jax.process_index() == 0  # wall time is the same on every process
        return uint8, {"seconds": seconds * counted, "timed_images": ev.batch_size * counted,
                       "nonfinite": float(np.sum(~ok[valid] | ~np.isfinite(speed[valid]))),
                       "max_speed": np.nanmax(np.where(valid, speed, 0.0)) if valid.any() else 0.0}

    logs.info(f"evaluate: {name} {method} {steps} steps w={w:g}: {ev.num_samples} samples")
    moments, kid_feats, extra = _stream(produce, ev.num_samples, ev.batch_size, mesh=mesh, kid_features=ev.kid_features,
                                        partial=layout.evaluation(row_id + ".partial"), save_every=ev.save_every,
                                        label=f"evaluate {name}")
    if extra["timed_images"] == 0:  # one batch only: time it again, compiled
        start = time.perf_counter()
        jax.block_until_ready(produce(0)[0])
        extra["seconds"], extra["timed_images"] = time.perf_counter() - start, ev.batch_size
    mu, sigma = moments.mean_cov()
    ref_mu, ref_sigma, ref_kid, _ = reference
    kid, kid_std = fid.kernel_inception_distance(kid_feats, ref_kid, num_subsets=ev.kid_subsets,
                                                 subset_size=ev.kid_subset_size, seed=config.seed)
    nfe = samplers.nfe(method, steps)
    row = {"model": name, "run": os.path.basename(gen.directory), "sampler": method, "steps": steps,
           "w": gen.sampling.w if baked else w, "w_baked": baked, "nfe": nfe,
           "network_passes": nfe * network_passes_per_velocity(gen.model, w, gen.null_label),
           "num_samples": moments.count, "fid": fid.frechet_distance(mu, sigma, ref_mu, ref_sigma),
           "kid": kid, "kid_std": kid_std,
           "seconds_per_1000": float(extra["seconds"] / extra["timed_images"] * 1000),
           "max_speed": float(extra["max_speed"]), "nonfinite": int(extra["nonfinite"])}
    logs.info(f"evaluate: {name} {method} {steps} steps: FID {row['fid']:.3f}, KID {kid:.5f}")
    if jax.process_index() == 0:
        with open(done_path, "w") as f:
            json.dump(row, f, indent=2)
    return row


def image_report(config, workdir: str, *, devices=None) -> dict:
    """Writes ``workdir/fid_report.{json,md,csv,png}`` and returns the report.

    ``devices``: where to generate and embed (default: all devices of all processes).
    """
    check_config(config)
    ev, layout, mesh = config.evaluate, RunDir(workdir), parallel.make_mesh(devices)
    parallel.check_batch_size(ev.batch_size, mesh)
    reference = reference_statistics(config, mesh)
    teacher = Generator.load(layout.resolve(0), mesh=mesh)
    plan = [(teacher, "teacher", *teacher.sampling[:3])]
    plan += [(gen, f"student (stage {gen.provenance['stage']})", *gen.sampling[:3])
             for gen in (Generator.load(p, mesh=mesh) for p in layout.stages(config.distill.name) if has_checkpoint(p))]
    main = [_row(*entry, config, layout, reference, mesh) for entry in plan]
    sweep = [_row(teacher, "teacher (sweep)", method, teacher.sampling.steps, w, config, layout, reference, mesh)
             for method in ev.sweep_samplers for w in ev.guidance_sweep]
    report = {"num_samples": ev.num_samples, "protocol": fid.PROTOCOL, "reference": reference_path(config),
              "rows": main, "sweep": sweep}
    if jax.process_index() == 0:
        with open(layout.report("fid_report.json"), "w") as f:
            json.dump(report, f, indent=2)
        rows = main + sweep
        with open(layout.report("fid_report.md"), "w") as f:
            f.write(markdown_table(rows, _COLUMNS))
        write_csv(layout.report("fid_report.csv"), rows, _COLUMNS)
        _figure(layout.report("fid_report.png"), main, sweep)
        logs.info(f"wrote {layout.report('fid_report.md')} and .json, .csv, .png")
    return report


def _figure(path, main, sweep) -> None:
    panels = 2 if sweep else 1
    fig, axes = plots.subplots(panels, (5.2 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    is_student = lambda r: r["model"].startswith("student")  # noqa: E731
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
    plots.save(fig, path)
