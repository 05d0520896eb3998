"""Sampling trained models and judging the samples, by concern:

- generation: :mod:`~kacjax.evaluation.sampling` (``generate``, with network-pass counts) and the
  notebook :class:`~kacjax.evaluation.generator.Generator` (``kacjax.load``);
- :mod:`~kacjax.evaluation.metrics`: scoring kernels, arrays in and numbers out (distances, the
  digits judge, FID and KID with the FID Inception);
- :mod:`~kacjax.evaluation.reports`: one module per experiment's report, each with
  ``check(config, mesh)`` and ``run(config, workdir)``, reading its config once into a frozen
  dataclass;
- :mod:`~kacjax.evaluation.artifacts` (tables, figures and the one writer of report files) and
  :mod:`~kacjax.evaluation.images` (uint8 quantisation, PNG grids);
- :mod:`~kacjax.evaluation.modes`: the ``sample``, ``evaluate`` and ``fid_stats`` modes.

Nothing here trains: the mode that distils before it reports lives in :mod:`kacjax.cli.compare_guidance`.
"""
