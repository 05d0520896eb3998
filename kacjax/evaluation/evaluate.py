"""The ``evaluate`` mode: each experiment's metrics and figures."""

from __future__ import annotations

from kacjax.evaluation import image_report, nfe_report, toy2d_report

# dataset name -> (check of config.evaluate, the report)
_REPORTS = {
    "toy2d": (toy2d_report.check_config, toy2d_report.toy2d_report),
    "digits": (nfe_report.check_config, nfe_report.nfe_report),
    **{name: (image_report.check_config, image_report.image_report) for name in ("cifar10", "celeb_a", "lsun/bedroom")},
}


def _report(config):
    name = config.data.name
    if name not in _REPORTS:
        raise ValueError(
            f"bad config: no built-in evaluation for dataset {name!r} (only {sorted(_REPORTS)}); drop 'evaluate' "
            "from the pipeline"
        )
    return _REPORTS[name]


def check_evaluate_config(config) -> None:
    """Raises ValueError when ``config.data.name`` has no evaluation or ``config.evaluate`` is impossible."""
    check, _ = _report(config)
    check(config)


def evaluate(config, workdir: str) -> dict:
    """Runs the evaluation that fits ``config.data.name`` and returns its metrics."""
    _, report = _report(config)
    return report(config, workdir)


def check_fid_stats_config(config) -> None:
    """The ``fid_stats`` mode needs an image dataset and usable ``evaluate`` values."""
    check, report = _report(config)
    if report is not image_report.image_report:
        raise ValueError(f"bad config: FID reference statistics are for image datasets, not {config.data.name!r}")
    check(config)
