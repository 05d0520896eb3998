"""Kac flow matching on 2-D toy targets with an MLP velocity field.

Run (about 1-2 minutes on 2 CPU cores):
  kacjax --config experiments/toy2d.py --workdir runs/toy2d
Other target:
  kacjax --config experiments/toy2d.py --workdir runs/toy2d_rings --config.data.target=rings

Isotropic noise: each point carried by a planar random flight (kacjax.flight) instead of two
independent Kac processes:
  kacjax --config experiments/toy2d.py:flight2 --workdir runs/toy2d_flight2

Does finite speed help? The run once per noise family (Kac, planar flight, line-Kac, Brownian,
Gaussian flow matching) and training seed, then noise_report.{md,json,csv,png}:
  kacjax --config experiments/toy2d.py:compare_noise --workdir runs/toy2d_noise

Writes runs/toy2d/toy2d.png (samples, trajectories, speeds) and
runs/toy2d/toy2d_metrics.json (energy distance, sliced Wasserstein, mode coverage per
sampler, against held-out target samples, next to the untrained model).
"""

from kacjax.configs.defaults import base_config


def get_config(variant: str = ""):
    c = base_config()
    c.pipeline = ("train", "evaluate")
    c.data = dict(name="toy2d", target="gaussians9", mode_std=0.01)
    c.model = dict(name="mlp", hidden=128, depth=3, time_scale=1.0, num_classes=None)
    c.train.update(
        batch_size=256,
        num_steps=4000,
        learning_rate=1e-3,
        warmup_steps=100,
        ema_decay=0.999,
        label_dropout=0.0,
        log_every=250,
        checkpoint_every=1000,
        keep_checkpoints=2,
    )
    c.sample.update(method="ab2", steps=100)
    # evaluate: samplers compared at `steps` steps each on `num_samples` draws; Euler also at few_steps.
    c.evaluate = dict(num_samples=4000, steps=100, few_steps=(1, 2, 4), methods=("euler", "midpoint", "ab2"),
                      num_trajectories=64)
    if variant == "quick":
        c.train.update(num_steps=1500, log_every=500, checkpoint_every=500, ema_decay=0.99)
        c.evaluate.update(num_samples=1000, steps=50)
    elif variant == "compare_noise":
        c.pipeline = ("compare_noise",)
        c.compare_noise.update(families=("kac", "flight2", "line2", "brownian", "linear"), modes=("train", "evaluate"))
    elif variant == "flight2":
        c.flow.update(noise_dim=2)  # a = 9: the per-coordinate long-time variance of the default
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '', 'quick', 'flight2' or 'compare_noise'")
    return c
