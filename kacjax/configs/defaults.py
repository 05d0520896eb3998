"""The default configuration every experiment in ``experiments/`` starts from.

Sections: ``flow`` (Kac noise and schedules), ``data``, ``model``, ``train``
(optimisation, logging, checkpoints), ``sample`` (the ``sample`` mode), ``evaluate``
and ``distill`` (filled in by experiments that use them). ``pipeline`` lists the
modes that ``--mode=all`` runs in order.
"""

from ml_collections import ConfigDict, config_dict


def base_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    c.pipeline = ("train", "sample")

    # noise_process: "kac" (the papers), "line" (a Kac process along a random line per group), "brownian" or
    # "linear" (the Gaussian baselines, sigma^2 = c^2 / a); noise_dim: the size of the groups of consecutive
    # coordinates one process carries: "kac" 1 (a process per coordinate) or 2 or 4 (a random flight per
    # group), "line" any size >= 2 dividing the example, Gaussian 1 (kacjax.core.noise).
    c.flow = ConfigDict(dict(a=9.0, c=3.0, T=1.0, f_schedule="linear", g_schedule="t", noise_dim=1,
                             noise_process="kac"))

    c.data = ConfigDict(dict(name="digits"))

    c.model = ConfigDict()
    c.model.name = "unet"
    c.model.num_classes = config_dict.placeholder(int)

    c.train = ConfigDict(
        dict(
            batch_size=128,
            num_steps=1000,
            learning_rate=2e-4,
            warmup_steps=0,
            grad_clip=1.0,
            b1=0.9,
            b2=0.999,
            weight_decay=0.0,
            ema_decay=0.9999,
            label_dropout=0.1,
            log_every=100,
            checkpoint_every=1000,
            keep_checkpoints=3,
            max_nonfinite_streak=20,
        )
    )

    # The `sample` mode: sampler, steps, guidance weight w in u_w = (1 + w) u_y - w u_null
    # (every guidance weight of a config is in [0, 1000)), number of images, labels (-1: cycle
    # through the classes), batch size per device call.
    # stage: 0 the teacher, k the k-th distilled student, -1 the last one trained.
    c.sample = ConfigDict(dict(method="ab2", steps=100, w=0.0, num=64, labels=-1, batch_size=256, stage=-1))

    # Distillation chain: teacher_steps -> student_steps[0] -> student_steps[1] -> ...; each
    # stage's teacher takes (previous grid / student grid) steps of inner_method per
    # student step. w is the guidance weight baked into the students (stage 1 teacher is
    # guided with it). x_source: 'forward' (x_t from the forward process) or 'rollout'
    # (teacher trajectories from the prior). loss_space: 'state' or 'velocity'.
    # w_range: () for students with w baked in, or (lo, hi): guidance-conditioned students that
    # take w as an input (w is then their default), drawn per example in training by w_draw:
    # 'uniform' (U[lo, hi]) or 'ends' (lo or hi with probability 1/4 each, else U[lo, hi]);
    # w_loss_power p >= 0 weights each example's loss by (1 + w)^-p (0: all w alike).
    # name: '' keeps the chain in distill/, another name in distill_<name>/ (several chains,
    # one teacher). train: overrides of the `train` section for every stage.
    c.distill = ConfigDict(
        dict(
            teacher_steps=100,
            student_steps=(20, 4, 2, 1),
            train_steps=(1000, 1000, 1000, 1000),
            learning_rates=(1e-4, 1e-4, 1e-4, 1e-4),
            inner_method="ab2",
            w=0.0,
            w_range=(),
            w_draw="uniform",
            w_loss_power=0.0,
            name="",
            x_source="forward",
            loss_space="state",
            train=dict(batch_size=128, ema_decay=0.999, warmup_steps=0, log_every=100, checkpoint_every=500),
        )
    )
    # The `compare_noise` mode: the experiment once per noise family (kac, flight2, flight4, line<d>,
    # brownian, linear; c scaled to match the flow's per-coordinate noise variance at t = T) and training
    # seed, each run taking `modes`, then noise_report.* (kacjax.evaluation.reports.noise_comparison).
    c.compare_noise = ConfigDict(dict(families=("kac", "brownian", "linear"), seeds=(0, 1, 2),
                                      modes=("train", "distill", "evaluate")))
    return c


def load_config(spec: str) -> ConfigDict:
    """Loads ``path/to/config.py[:variant]`` as the command line does (for notebooks and tests)."""
    import importlib.util

    path, _, variant = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("kacjax_experiment_config", path)
    if module_spec is None:
        raise FileNotFoundError(f"no config file at {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()
