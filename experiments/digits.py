"""Class-conditional Kac flow teacher and DistillKac students on scikit-learn's 8x8 digits.

The embedded dataset: runs anywhere, no download.
Teacher and a guided sample grid (the README quickstart, a few minutes on 2 CPU cores):
  kacjax --config experiments/digits.py --workdir runs/digits
The whole chain in one command (a longer teacher, 100 -> 20 -> 4 -> 2 -> 1 distillation,
student samples and the quality-vs-steps report, about 30 minutes on 2 CPU cores):
  kacjax --config experiments/digits.py:chain --workdir runs/digits_chain
Sample from any stage afterwards (0: teacher, k: k-th student, -1: last):
  kacjax --config experiments/digits.py:chain --workdir runs/digits_chain --mode=sample --config.sample.stage=0
Smoke test: experiments/digits.py:quick.
"""

from kacjax.cli.defaults import base_config


def get_config(variant: str = ""):
    c = base_config()
    c.pipeline = ("train", "sample")
    c.data = dict(name="digits")
    c.model = dict(
        name="unet", ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(4,), num_heads=2,
        dropout=0.0, use_scale_shift_norm=True, time_scale=1000.0, num_classes=10, dtype="float32",
    )
    c.train.update(batch_size=64, num_steps=1000, learning_rate=1e-3, warmup_steps=100, ema_decay=0.995,
                   log_every=100, checkpoint_every=500)
    # Guided teacher grid: AB-2, 100 steps, w = 1 (u = 2 u_y - u_null), one row per class.
    c.sample.update(method="ab2", steps=100, w=1.0, num=100, stage=-1)
    c.distill.update(teacher_steps=100, student_steps=(20, 4, 2, 1), train_steps=(400, 400, 400, 400),
                     learning_rates=(2e-4, 2e-4, 2e-4, 2e-4), inner_method="ab2", w=1.0)
    c.distill.train.update(batch_size=64, ema_decay=0.995, log_every=100, checkpoint_every=200)
    # evaluate: teacher vs students at these step counts, on num_samples draws; guidance_sweep:
    # weights w at which the teacher is also scored at its own steps, with each of sweep_samplers.
    c.evaluate = dict(num_samples=1000, steps=(1, 2, 4, 20), teacher_steps=100, guidance_sweep=(),
                      sweep_samplers=("ab2",))
    if variant == "chain":
        c.pipeline = ("train", "distill", "sample", "evaluate")
        c.train.update(num_steps=3000, ema_decay=0.999)
    elif variant == "quick":
        c.pipeline = ("train", "distill", "sample", "evaluate")
        c.train.update(num_steps=60, log_every=20, checkpoint_every=30, warmup_steps=10)
        c.distill.update(student_steps=(4, 1), teacher_steps=8, train_steps=(20, 20), learning_rates=(2e-4, 2e-4))
        c.distill.train.update(log_every=10, checkpoint_every=10, batch_size=32)
        c.sample.update(num=20, steps=8)
        c.evaluate.update(num_samples=100, steps=(1, 4), teacher_steps=8)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '', 'chain' or 'quick'")
    return c
