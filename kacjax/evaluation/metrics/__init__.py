"""Scoring kernels: arrays in, numbers out, no config and no run directory.

:mod:`~kacjax.evaluation.metrics.distances` (energy distance, sliced Wasserstein, Fréchet distance,
mode coverage), :mod:`~kacjax.evaluation.metrics.digits_judge` (the digits classifier behind
FD-digits), :mod:`~kacjax.evaluation.metrics.fid` (FID and KID, public name :mod:`kacjax.fid`) with
the FID Inception (:mod:`~kacjax.evaluation.metrics.inception`) and its safe TorchScript weight
reader (:mod:`~kacjax.evaluation.metrics.torchscript`).
"""
