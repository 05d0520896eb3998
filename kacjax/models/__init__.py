"""Velocity-field networks, built from a config section.

Every model is a Flax linen module called as ``model.apply({'params': p}, x, t, y,
train=..., rngs=...)`` with x ``(B, ...)``, t ``(B,)`` in ``[0, T]`` and y ``(B,)``
int labels (or None), returning an array of x's shape.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def build_model(model_cfg) -> nn.Module:
    """Builds ``model_cfg.name`` (``'mlp'`` or ``'unet'``) with the other keys as fields."""
    # Lists (from JSON-saved configs) become tuples: modules must be hashable to be jit-static.
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(model_cfg).items()}
    name = kwargs.pop("name", None)
    if isinstance(kwargs.get("dtype"), str):  # "bfloat16": compute dtype, parameters stay float32
        try:
            kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
        except TypeError:
            raise ValueError(f"bad model config: unknown dtype {kwargs['dtype']!r}") from None
    if name == "mlp":
        from kacjax.models.mlp import VelocityMLP as cls
    elif name == "unet":
        from kacjax.models.unet import UNet as cls
    else:
        raise ValueError(f"unknown model name {name!r}; choose 'mlp' or 'unet'")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad model config for {name!r}: {err}") from None


def check_dtype(dtype) -> None:
    """Raises ValueError unless ``dtype`` names a float type, the only ones a model computes in."""
    try:
        floating = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise ValueError(f"dtype must be a float type such as 'float32' or 'bfloat16', got {dtype!r}")


def check_model(model_cfg, shape) -> None:
    """Raises ValueError for a model config that cannot take examples of ``shape``, from the config
    alone (nothing traced): unknown names and fields, and each model's ``check_shape``."""
    if model_cfg.get("dtype") is not None:
        try:
            check_dtype(model_cfg["dtype"])
        except ValueError as err:
            raise ValueError(f"bad model config: {err}") from None
    model = build_model(model_cfg)
    try:
        model.check_shape(tuple(shape))
    except ValueError as err:
        raise ValueError(f"bad model config: {err}") from None
