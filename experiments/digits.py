"""Class-conditional Kac flow teacher and DistillKac students on scikit-learn's 8x8 digits.

The embedded dataset: runs anywhere, no download. The full pipeline (teacher,
the 100 -> 20 -> 4 -> 2 -> 1 distillation chain, guided samples, NFE report):
  kacjax --config experiments/digits.py --workdir runs/digits
Teacher only, then a guided grid from it:
  kacjax --config experiments/digits.py --workdir runs/digits --mode=train
  kacjax --config experiments/digits.py --workdir runs/digits --mode=sample --config.sample.stage=0 --config.sample.w=1.0
Smoke test: experiments/digits.py:quick.
"""

from kacjax.config_defaults import base_config


def get_config(variant: str = ""):
    c = base_config()
    c.pipeline = ("train", "distill", "sample", "evaluate")
    c.data = dict(name="digits")
    c.model = dict(
        name="unet", ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), num_heads=2,
        dropout=0.0, use_scale_shift_norm=True, time_scale=1000.0, num_classes=10,
    )
    c.train.update(batch_size=128, num_steps=2000, learning_rate=1e-3, warmup_steps=100, ema_decay=0.999,
                   log_every=100, checkpoint_every=500)
    c.sample.update(method="ab2", steps=100, w=1.0, num=100, stage=-1)
    c.distill.update(student_steps=(20, 4, 2, 1), train_steps=(300, 300, 300, 300),
                     learning_rates=(2e-4, 2e-4, 2e-4, 2e-4), inner_method="ab2", w=1.0)
    # evaluate: teacher vs students at these step counts, on num_samples draws.
    c.evaluate = dict(num_samples=1000, steps=(1, 2, 4, 20), teacher_steps=100)
    if variant == "quick":
        c.train.update(num_steps=60, log_every=20, checkpoint_every=30, warmup_steps=10)
        c.distill.update(student_steps=(4, 1), teacher_steps=8, train_steps=(20, 20), learning_rates=(2e-4, 2e-4))
        c.distill.train.update(log_every=10, checkpoint_every=10, batch_size=64)
        c.sample.update(num=20, steps=8)
        c.evaluate.update(num_samples=100, steps=(1, 4), teacher_steps=8)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'quick'")
    return c
