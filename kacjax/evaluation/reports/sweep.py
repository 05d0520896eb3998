"""The teacher's guidance sweep that the digits and image reports add: its check and its order."""

from __future__ import annotations

from kacjax.core import samplers


def check_sweep(weights, methods) -> None:
    """Raises ValueError unless ``weights`` (``evaluate.guidance_sweep``) are numbers and ``methods``
    (``evaluate.sweep_samplers``) known samplers."""
    for method in methods:
        samplers.check_method(method)
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ValueError(f"bad config: evaluate.guidance_sweep holds numbers, got {w!r}")


def sweep_points(weights, methods) -> list:
    """``(method, w)`` for every sweep row, the weights of each sampler together."""
    return [(method, w) for method in methods for w in weights]
