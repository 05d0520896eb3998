"""CelebA 64x64 (unconditional): Kac flow teacher and the DistillKac chain.

Needs celeb_a prepared from its official files (docs/data.md), then:
  kacjax-prepare celeb_a --source DIR_WITH_img_align_celeba.zip_AND_ITS_LISTS --data_dir $TFDS_DATA_DIR
  kacjax --config experiments/celeba64.py --workdir $WORKDIR --config.data.data_dir=$TFDS_DATA_DIR
Variants: ':quick' (a smoke test).

Images: 140x140 centre crop of the 178x218 photos, resized to 64x64. Unconditional
(samples shown with w = 0 in the paper), so no guidance and no label dropout.
UNet: 128 channels, mult 1,2,2,4, 2 res blocks, attention at 16x16 and 8x8, heads of
64 channels, scale-shift norm (our choice; the paper's CelebA UNet is not specified).
"""

from kacjax.configs.images import image_config, quick


def get_config(variant: str = ""):
    c = image_config(
        data=dict(name="celeb_a", image_size=64, random_flip=True),
        model=dict(ch=128, ch_mult=(1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16, 8), num_head_channels=64,
                   use_scale_shift_norm=True, dropout=0.1, time_scale=1000.0, num_classes=None),
        sample_w=0.0, batch_size=128, num_steps=400_000,
    )
    c.train.label_dropout = 0.0
    if variant == "quick":
        quick(c, dict(ch=32, ch_mult=(1, 2, 2, 2), num_res_blocks=1, attn_resolutions=(8,), num_head_channels=16))
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'quick'")
    return c
