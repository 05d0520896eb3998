"""CIFAR-10 (32x32, 10 classes): guided Kac flow teacher and the DistillKac chain.

Needs CIFAR-10 prepared from its official files (docs/data.md), then:
  kacjax-prepare cifar10 --source DIR_WITH_cifar-10-binary.tar.gz --data_dir $TFDS_DATA_DIR
  kacjax --config experiments/cifar10.py --workdir $WORKDIR --config.data.data_dir=$TFDS_DATA_DIR
Multi-host: launch/tpu_pod.sh or launch/slurm_gpu.sbatch with CONFIG=experiments/cifar10.py.
Variants: ':distillkac' (the larger DistillKac UNet), ':quick' (a smoke test).

Teacher: the reference Kac UNet (128 channels, mult 1,2,2,2, 2 res blocks, attention at
16x16 and in the middle, 4 heads, dropout 0.1; about 35.7M parameters), a = 9, c = 3,
T = 1, f = 1 - t, g = t, t fed to the embedding as 1000 t. Sampled with AB-2, 100 steps,
w = 1.2 (the best reported CIFAR-10 FID).
"""

from kacjax.configs.images import image_config, quick

REFERENCE_UNET = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), num_heads=4,
                      dropout=0.1, time_scale=1000.0, num_classes=10)
# DistillKac's UNet as described by a secondary source (unverified): ADM-style.
DISTILLKAC_UNET = dict(ch=256, ch_mult=(1, 2, 2, 2), num_res_blocks=3, attn_resolutions=(16, 8, 4),
                       num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True, dropout=0.0,
                       time_scale=1000.0, num_classes=10)


def get_config(variant: str = ""):
    model = DISTILLKAC_UNET if variant == "distillkac" else REFERENCE_UNET
    c = image_config(data=dict(name="cifar10", image_size=32, random_flip=True), model=model,
                     sample_w=1.2, batch_size=128, num_steps=400_000)
    if variant == "quick":
        quick(c, dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), num_heads=2))
    elif variant not in ("", "distillkac"):
        raise ValueError(f"unknown variant {variant!r}; use '', 'distillkac' or 'quick'")
    return c
