"""LSUN Bedroom 256x256 (unconditional): Kac flow teacher and the DistillKac chain.

Needs lsun/bedroom prepared from its official files (docs/data.md:
kacjax-prepare lsun/bedroom --source DIR_WITH_bedroom_*_lmdb.zip --data_dir $TFDS_DATA_DIR); a pod or a
multi-GPU cluster is the realistic target:
  TPU_NAME=... ZONE=... PROJECT=... CONFIG=experiments/lsun_bedroom256.py WORKDIR=gs://... launch/tpu_pod.sh
Variants: ':quick' (a smoke test).

Images: shorter side resized to 256, centre crop. UNet (our choice, ADM LSUN-like):
128 channels, mult 1,1,2,2,4,4, 2 res blocks, attention at 16x16, heads of 64 channels,
scale-shift norm, residual up/down sampling, bfloat16 compute.
"""

from kacjax.configs.images import image_config, quick


def get_config(variant: str = ""):
    c = image_config(
        data=dict(name="lsun/bedroom", image_size=256, random_flip=True),
        model=dict(ch=128, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,),
                   num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True, dropout=0.1,
                   time_scale=1000.0, num_classes=None, dtype="bfloat16"),
        sample_w=0.0, batch_size=64, num_steps=500_000,
    )
    c.train.label_dropout = 0.0
    c.sample.batch_size = 16
    if variant == "quick":
        # one width: a 16-channel UNet that widens to 32 would join 32 + 16 channels, which 32 GroupNorm
        # groups cannot split
        quick(c, dict(ch=16, ch_mult=(1, 1, 1, 1, 1, 1), num_res_blocks=1, attn_resolutions=(16,),
                      num_head_channels=16, dtype="float32"))
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'quick'")
    return c
