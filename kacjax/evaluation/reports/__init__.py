"""One module per experiment's report, each with ``check(config, mesh)`` (every ``evaluate`` value
it reads, before any work) and ``run(config, workdir)``, reading its config once into a frozen
dataclass and passing values; all of them write through
:func:`kacjax.evaluation.artifacts.write_report`.

- :mod:`~kacjax.evaluation.reports.digits`: quality against steps on digits (``nfe_report.*``,
  ``report.md``), with :mod:`~kacjax.evaluation.reports.digits_page`,
  :mod:`~kacjax.evaluation.reports.digits_figures` and :mod:`~kacjax.evaluation.reports.velocity_profile`;
- :mod:`~kacjax.evaluation.reports.toy2d`: samplers against the 2-D target (``toy2d_metrics.json``);
- :mod:`~kacjax.evaluation.reports.image_fid`: FID and KID on image datasets (``fid_report.*``),
  with :mod:`~kacjax.evaluation.reports.feature_stream` and
  :mod:`~kacjax.evaluation.reports.fid_reference`;
- :mod:`~kacjax.evaluation.reports.guidance`: a guidance-conditioned student against fixed-``w``
  ones (``guidance_report.*``);
- :mod:`~kacjax.evaluation.reports.sweep`: the teacher's guidance sweep the digits and image
  reports share.
"""
