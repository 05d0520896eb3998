"""Tests for the ADM-style UNet. Large configs are traced with ``jax.eval_shape`` only."""

import re

import flax
import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree

from kacjax.models.unet import UNet, param_count

# The configs of docs/models.md.
DIGITS8 = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), num_heads=2,
               dropout=0.1, time_scale=1000.0, num_classes=10)
KAC32 = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
             num_head_channels=64, dropout=0.1)
DISTILLKAC32 = dict(ch=256, ch_mult=(1, 2, 2, 2), num_res_blocks=3, attn_resolutions=(16, 8, 4),
                    num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True,
                    dropout=0.0)
CELEBA64 = dict(ch=128, ch_mult=(1, 2, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,),
                num_head_channels=64, dropout=0.1)
LSUN256 = dict(ch=128, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(16,),
               num_head_channels=64, dropout=0.0)

# name: (UNet fields, image size, image channels, parameter count in docs/models.md).
CONFIGS = {
    "digits8": (DIGITS8, 8, 1, 702_753),
    "kac32": (KAC32, 32, 3, 35_746_307),
    "distillkac32": (DISTILLKAC32, 32, 3, 235_511_043),
    "celeba64": (CELEBA64, 64, 3, 78_700_803),
    "lsun256": (LSUN256, 256, 3, 113_673_219),
}


def _inputs(size, channels, batch=2, num_classes=None):
    x = jnp.zeros((batch, size, size, channels))
    t = jnp.full((batch,), 0.5, jnp.float32)
    y = None if num_classes is None else jnp.arange(batch, dtype=jnp.int32) % (num_classes + 1)
    return x, t, y


def _abstract_init(config, size, channels):
    """(output, params) as ShapeDtypeStructs, without running the init."""
    model = UNet(**config)
    x, t, y = _inputs(size, channels, num_classes=config.get("num_classes"))
    return jax.eval_shape(
        lambda: model.init_with_output(jax.random.key(0), x, t, y, train=False))


@jax.jit
def _perturbed(params, key):
    """params + 0.1 N(0, 1), so the zero-initialised layers no longer hide the input."""
    flat, unravel = ravel_pytree(params)
    return unravel(flat + 0.1 * jax.random.normal(key, flat.shape))


@pytest.fixture(scope="module")
def tiny():
    """(model, real init params, perturbed params, jitted apply) for the 8x8x1 digits config."""
    model = UNet(**DIGITS8)
    x, t, y = _inputs(8, 1, num_classes=10)
    # An rbg key: XLA:CPU compiles the per-parameter threefry streams about 3x slower.
    key = jax.random.key(0, impl="rbg")
    params = jax.jit(model.init, static_argnames="train")(key, x, t, y, train=False)
    apply = jax.jit(model.apply, static_argnames="train")
    return model, params["params"], _perturbed(params["params"], jax.random.key(1)), apply


def _batch(key, batch=4):
    return jax.random.normal(key, (batch, 8, 8, 1)), jnp.linspace(0.0, 1.0, batch)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_output_shape_and_param_count(name):
    config, size, channels, expected = CONFIGS[name]
    out, variables = _abstract_init(config, size, channels)
    assert out.shape == (2, size, size, channels) and out.dtype == jnp.float32
    assert set(variables) == {"params"}  # no mutable state (no BatchNorm)
    assert param_count(variables["params"]) == expected  # the table of docs/models.md


def test_reference_kac_cifar_unet_has_35_7m_params():
    _, variables = _abstract_init(KAC32, 32, 3)
    assert abs(param_count(variables["params"]) / 35.7e6 - 1) < 0.02


def test_out_channels():
    out, _ = _abstract_init(dict(DIGITS8, out_channels=3), 8, 1)
    assert out.shape == (2, 8, 8, 3)


def test_tiny_real_apply_with_null_label(tiny):
    model, params, perturbed, apply = tiny
    x, t = _batch(jax.random.key(2))
    null = jnp.full((4,), 10, jnp.int32)
    out = apply({"params": perturbed}, x, t, null, train=False)
    assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))
    # Zero-initialised output conv: a fresh model predicts exactly zero.
    assert not jnp.any(apply({"params": params}, x, t, null, train=False))


@pytest.mark.parametrize("config, size, resolutions", [
    (dict(KAC32, num_res_blocks=1), 32, (16,)),
    (dict(DISTILLKAC32, ch=64, num_res_blocks=1), 32, (16, 8, 4)),
    (dict(KAC32, ch=32, num_head_channels=16, attn_resolutions=(32, 4)), 32, (32, 4)),
    (dict(KAC32, ch=32, attn_resolutions=()), 32, ()),
])
def test_attention_only_at_requested_resolutions(config, size, resolutions):
    _, variables = _abstract_init(config, size, 3)
    names = [n for n in variables["params"] if "attn" in n]
    assert "mid_attn" in names
    found = {}
    for name in names:
        if name != "mid_attn":
            path, res = re.fullmatch(r"(down|up)_(\d+)x\2_attn\d+", name).group(1, 2)
            found[path, int(res)] = found.get((path, int(res)), 0) + 1
    blocks = config["num_res_blocks"]
    expected = {("down", r): blocks for r in resolutions} | {("up", r): blocks + 1 for r in resolutions}
    assert found == expected


def test_labels_change_the_output(tiny):
    _, _, perturbed, apply = tiny
    x, t = _batch(jax.random.key(3))
    outs = [apply({"params": perturbed}, x, t, jnp.full((4,), label, jnp.int32), train=False)
            for label in (0, 3, 10)]
    assert float(jnp.abs(outs[0] - outs[1]).max()) > 1e-3
    assert float(jnp.abs(outs[0] - outs[2]).max()) > 1e-3


def test_time_changes_the_output(tiny):
    _, _, perturbed, apply = tiny
    x, _ = _batch(jax.random.key(4))
    y = jnp.zeros((4,), jnp.int32)
    a = apply({"params": perturbed}, x, jnp.full((4,), 0.2, jnp.float32), y, train=False)
    b = apply({"params": perturbed}, x, jnp.full((4,), 0.7, jnp.float32), y, train=False)
    assert float(jnp.abs(a - b).max()) > 1e-3


def test_label_presence_is_checked(tiny):
    model, params, _, _ = tiny
    x, t = _batch(jax.random.key(5))
    with pytest.raises(ValueError, match="class-conditional"):
        model.apply({"params": params}, x, t, train=False)
    unconditional = UNet(**dict(DIGITS8, num_classes=None))
    with pytest.raises(ValueError, match="unconditional"):
        unconditional.init(jax.random.key(0), x, t, jnp.zeros((4,), jnp.int32), train=False)


def test_dropout_only_in_training(tiny):
    _, _, perturbed, apply = tiny
    x, t = _batch(jax.random.key(6))
    y = jnp.zeros((4,), jnp.int32)
    variables = {"params": perturbed}
    # Without a 'dropout' rng, any active dropout layer would raise.
    evaluated = apply(variables, x, t, y, train=False)
    train_a = apply(variables, x, t, y, train=True, rngs={"dropout": jax.random.key(7)})
    train_b = apply(variables, x, t, y, train=True, rngs={"dropout": jax.random.key(8)})
    assert float(jnp.abs(train_a - evaluated).max()) > 1e-3
    assert float(jnp.abs(train_a - train_b).max()) > 1e-3


def test_bfloat16_compute_float32_params_and_output(tiny):
    _, _, perturbed, apply = tiny
    x, t = _batch(jax.random.key(9))
    y = jnp.full((4,), 10, jnp.int32)
    model = UNet(**dict(DIGITS8, dtype=jnp.bfloat16))
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), x, t, y, train=False))["params"]
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}
    out = jax.jit(model.apply, static_argnames="train")({"params": perturbed}, x, t, y, train=False)
    ref = apply({"params": perturbed}, x, t, y, train=False)
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    assert float(jnp.abs(out - ref).max()) < 0.1 * float(jnp.abs(ref).max())


@pytest.mark.parametrize("config, shape, message", [
    (dict(KAC32, attn_resolutions=(12,)), (1, 32, 32, 3),
     r"attn_resolutions \[12\] are not present .* valid resolutions are \[32, 16, 8, 4\]"),
    (KAC32, (1, 36, 36, 3), r"image size 36 is not divisible by 2\*\*\(len\(ch_mult\) - 1\) = 8"),
    (KAC32, (1, 32, 16, 3), "square"),
    (dict(KAC32, ch=48, num_head_channels=-1), (1, 32, 32, 3), "48 channels are not divisible by min"),
    (dict(KAC32, num_head_channels=-1, num_heads=3), (1, 32, 32, 3), "num_heads=3"),
    (dict(KAC32, num_head_channels=48), (1, 32, 32, 3), "num_head_channels=48"),
])
def test_bad_configs_raise(config, shape, message):
    model = UNet(**config)
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape),
                                          jnp.zeros(shape[:1]), train=False))


@pytest.mark.parametrize("config, size", [
    (dict(DIGITS8, ch=32, ch_mult=(1, 3, 2)), 8),
    (dict(DISTILLKAC32, ch=32, ch_mult=(2, 1, 3), num_res_blocks=1, attn_resolutions=(8,),
          num_head_channels=32), 16),
    (dict(KAC32, ch=16, ch_mult=(1, 1, 1), num_res_blocks=0, attn_resolutions=(), num_head_channels=-1), 8),
])
def test_group_norm_widths_are_those_of_the_traced_network(config, size):
    """The widths the config check reads off the fields are every GroupNorm's, as built."""
    model = UNet(**config)
    _, params = _abstract_init(config, size, 3)
    flat = flax.traverse_util.flatten_dict(params["params"], sep="/")
    built = {path.removesuffix("/scale"): leaf.shape[0] for path, leaf in flat.items()
             if re.search(r"(^|/)norm\w*/scale$", path)}
    assert model.group_norm_widths(model._check(size, size)) == built


@pytest.mark.parametrize("config, shape, message", [
    (dict(LSUN256, ch=16, ch_mult=(1, 1, 2, 2, 2, 2), num_res_blocks=1, num_head_channels=16), (256, 256, 3),
     r"GroupNorm up_64x64_block1/norm_in: 48 channels .* change model.ch \(16\) or model.ch_mult"),
    (dict(KAC32, ch=40, num_head_channels=-1), (32, 32, 3),
     r"GroupNorm down_32x32_block0/norm_in: 40 channels .* change model.ch \(40\)"),
    (KAC32, (32, 32), r"UNet needs \(height, width, channels\) images"),
])
def test_a_bad_config_is_found_from_the_fields_alone(config, shape, message):
    """``check_shape`` (the config check) finds what tracing would, without tracing."""
    with pytest.raises(ValueError, match=message):
        UNet(**config).check_shape(shape)
