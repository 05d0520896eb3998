"""Input pipelines: step-indexed, stateless, sharded per process.

``build_input(data_cfg, global_batch_size=..., seed=..., process_index=..., process_count=...)``
returns an :class:`Input` whose ``batch(step)`` is a pure function of
``(seed, step, process_index)``. See docs/data.md.
"""

from kacjax.data.build import build_input, build_source, check_data_config, example_shape
from kacjax.data.pipeline import Input
from kacjax.data.toy2d import sample_toy2d, toy2d_modes

__all__ = ["Input", "build_input", "build_source", "check_data_config", "example_shape", "sample_toy2d", "toy2d_modes"]
