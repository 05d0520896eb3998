"""Small configs shared by the pipeline tests."""

import os

from kacjax.config_defaults import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(data: str = "toy2d", **train):
    """A fast config: an MLP on toy2d (unconditional) or digits (conditional)."""
    c = load_config(os.path.join(ROOT, "experiments", "toy2d.py:quick"))
    if data == "digits":
        c.data = dict(name="digits")
        c.model = dict(name="mlp", hidden=32, depth=2, time_scale=1.0, num_classes=10)
        c.train.label_dropout = 0.1
    else:
        c.model.update(hidden=32, depth=2)
    c.train.update(dict(batch_size=16, num_steps=4, log_every=2, checkpoint_every=2, warmup_steps=0))
    c.train.update(train)
    return c
