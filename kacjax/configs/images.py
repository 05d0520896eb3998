"""Shared pieces of the image experiment configs (CIFAR-10, CelebA-64, LSUN Bedroom-256)."""

from ml_collections import config_dict

from kacjax.configs.defaults import base_config


def image_config(*, data: dict, model: dict, sample_w: float, batch_size: int, num_steps: int):
    """A teacher + distillation config with the reference optimisation recipe.

    Reference recipe (Kac flow code, CIFAR-10): Adam 2e-4, grad-norm clip 1, EMA 0.9999,
    label dropout 0.1; DistillKac chain 100 -> 20 -> 4 -> 2 -> 1 (N = 5, 5, 2, 2).
    The per-stage step counts and learning rates are our choice (not published).
    """
    c = base_config()
    c.pipeline = ("train", "distill", "sample", "evaluate")
    # data_dir: the prepared TFDS directory (None: $TFDS_DATA_DIR, else ~/tensorflow_datasets);
    # tfds_name: another prepared builder read the same way (None: the dataset's own). The other data
    # keys (split, num_threads) keep kacjax.data's defaults; the command line declares them.
    c.data = dict(data, data_dir=config_dict.placeholder(str), tfds_name=config_dict.placeholder(str))
    c.model = {"name": "unet", "dtype": "float32", **model}  # dtype="bfloat16": mixed precision
    c.train.update(batch_size=batch_size, num_steps=num_steps, learning_rate=2e-4, warmup_steps=1000,
                   ema_decay=0.9999, log_every=100, checkpoint_every=5000, keep_checkpoints=3)
    c.sample.update(method="ab2", steps=100, w=sample_w, num=64, batch_size=64)
    c.distill.update(teacher_steps=100, student_steps=(20, 4, 2, 1), train_steps=(50_000,) * 4,
                     learning_rates=(1e-4,) * 4, inner_method="ab2", w=sample_w)
    c.distill.train.update(batch_size=batch_size, ema_decay=0.9999, log_every=100, checkpoint_every=5000)
    # evaluate: FID and KID (docs/evaluation.md) of the teacher and every stage, num_samples each,
    # generated and embedded in global batches of batch_size over all devices; partial sums saved
    # every save_every batches. reference_stats: None (a cache file made from the training split
    # on first use) or a path. KID on the first kid_features features, kid_subsets subsets of
    # kid_subset_size. guidance_sweep: weights w at which the teacher is also scored, with each
    # of sweep_samplers (FID against w).
    # batch_size: 512 splits over 8, 16, ... 512 devices (500 did not over 8).
    c.evaluate = dict(num_samples=50_000, batch_size=512, save_every=10,
                      reference_stats=config_dict.placeholder(str), kid_features=10_000, kid_subsets=100,
                      kid_subset_size=1000, guidance_sweep=(), sweep_samplers=("ab2",))
    return c


def quick(c, model_overrides: dict):
    """Shrinks a config to a smoke test: a tiny UNet, a few steps, a 2-stage chain."""
    c.model.update(model_overrides)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2, warmup_steps=0)
    c.sample.update(num=8, steps=4, batch_size=8)
    c.distill.update(teacher_steps=4, student_steps=(2, 1), train_steps=(2, 2), learning_rates=(1e-4, 1e-4))
    c.distill.train.update(batch_size=8, log_every=1, checkpoint_every=2)
    c.evaluate.update(num_samples=16, batch_size=8, save_every=1, kid_features=16, kid_subsets=10, kid_subset_size=8)
    return c
