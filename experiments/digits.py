"""Class-conditional Kac flow teacher and DistillKac students on scikit-learn's 8x8 digits.

The embedded dataset: runs anywhere, no download. The main job (the README's first
command): teacher, a guided sample grid, the chain 100 -> 20 -> 4 -> 2 -> 1, and the
report (workdir/report.md, with sample grids of every stage, quality against steps,
stability along the path and the velocity near the data end), about 6 minutes on 2 CPU cores:
  kacjax --config experiments/digits.py --workdir runs/digits
A rerun reuses every finished part. A guidance-conditioned chain (students that take w as an
input) against fixed-w chains at several w, from the same teacher (reuses it):
  kacjax --config experiments/digits.py:guidance --workdir runs/digits
Sample from any stage afterwards (0: teacher, k: k-th student, -1: last):
  kacjax --config experiments/digits.py --workdir runs/digits --mode=sample --config.sample.stage=2
Random-flight noise instead of a Kac process per pixel (kacjax.flight): :flight2 carries
horizontally adjacent pixel pairs by planar flights (a = 9), :flight4 groups of four pixels by
4-D flights (a = 4.5); both match the per-coordinate variance of the default a = 9 at long times:
  kacjax --config experiments/digits.py:flight2 --workdir runs/digits_flight2
Does finite speed help? The main job once per noise family and training seed (Kac, flights, line-Kac
over 4 pixels and over the whole image, Brownian, Gaussian flow matching; 21 runs of about 6 minutes,
finished runs reused), then noise_report.{md,json,csv,png}:
  kacjax --config experiments/digits.py:compare_noise --workdir runs/digits_noise
Smoke test: experiments/digits.py:quick.
"""

from kacjax.configs.defaults import base_config


def get_config(variant: str = ""):
    c = base_config()
    c.pipeline = ("train", "sample", "distill", "evaluate")
    c.data = dict(name="digits")
    c.model = dict(
        name="unet", ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(4,), num_heads=2,
        dropout=0.0, use_scale_shift_norm=True, time_scale=1000.0, num_classes=10, dtype="float32",
    )
    c.train.update(batch_size=64, num_steps=2000, learning_rate=1e-3, warmup_steps=100, ema_decay=0.999,
                   log_every=100, checkpoint_every=500)
    # Guided teacher grid (stage 0): AB-2, 100 steps, w = 1 (u = 2 u_y - u_null), one row per class.
    c.sample.update(method="ab2", steps=100, w=1.0, num=100, stage=0)
    c.distill.update(teacher_steps=100, student_steps=(20, 4, 2, 1), train_steps=(300, 300, 300, 300),
                     learning_rates=(2e-4, 2e-4, 2e-4, 2e-4), inner_method="ab2", w=1.0)
    c.distill.train.update(batch_size=64, ema_decay=0.995, log_every=100, checkpoint_every=150)
    # evaluate: teacher vs students at these step counts, on num_samples draws; guidance_sweep:
    # weights w at which the teacher is also scored at its own steps, with each of sweep_samplers;
    # guidance_ws: the weights compare_guidance scores (the `guidance` variant).
    c.evaluate = dict(num_samples=1000, steps=(1, 2, 4, 20), teacher_steps=100, guidance_sweep=(),
                      sweep_samplers=("ab2",), guidance_ws=(0.0, 1.0, 3.0))
    if variant == "guidance":
        # One chain of students that take any w in [0, 3] as an input (a quarter of the examples at
        # each end of the range, each example's loss weighted by (1 + w)^-1.5 so that the large
        # errors of the guided targets do not drown the unguided ones), against a fixed-w chain per
        # w of guidance_ws (distill_w0/ ... distill_w3/), all from the same teacher, same stages.
        c.pipeline = ("train", "compare_guidance")
        c.distill.update(w_range=(0.0, 3.0), w_draw="ends", w_loss_power=1.5, name="wcond")
        c.evaluate.update(guidance_ws=(0.0, 1.0, 2.0, 3.0))
    elif variant in ("flight2", "flight4"):
        # a d-flight of rate a has the long-time per-coordinate variance of a 1-D process of rate a d / 2
        c.flow.update(noise_dim=int(variant[-1]), a=9.0 * 2 / int(variant[-1]))
    elif variant == "compare_noise":
        c.pipeline = ("compare_noise",)
        c.compare_noise.update(families=("kac", "brownian", "linear", "line64", "line4", "flight2", "flight4"))
    elif variant == "quick":
        c.train.update(num_steps=60, log_every=20, checkpoint_every=30, warmup_steps=10, ema_decay=0.9)
        c.distill.update(student_steps=(4, 1), teacher_steps=8, train_steps=(20, 20), learning_rates=(2e-4, 2e-4))
        c.distill.train.update(log_every=10, checkpoint_every=10, batch_size=32)
        c.sample.update(num=20, steps=8)
        c.evaluate.update(num_samples=100, steps=(1, 4), teacher_steps=8, guidance_ws=(0.0, 2.0))
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '', 'guidance', 'flight2', 'flight4', 'compare_noise' "
                         "or 'quick'")
    return c
