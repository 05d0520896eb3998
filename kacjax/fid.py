"""``kacjax.fid``: FID and KID with the standard FID Inception, offline, the public names of
:mod:`kacjax.evaluation.metrics.fid`."""

from kacjax.evaluation.metrics.fid import (PROTOCOL, Moments, UnsafeWeightsError, embedder, features, frechet_distance,
                                           kernel_inception_distance, load_statistics, read_torchscript,
                                           save_statistics)

__all__ = ["PROTOCOL", "UnsafeWeightsError", "read_torchscript", "features", "embedder", "frechet_distance",
           "kernel_inception_distance", "Moments", "save_statistics", "load_statistics"]
