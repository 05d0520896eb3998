"""The ``evaluate`` mode: each experiment's metrics and figures."""

from __future__ import annotations

from kacjax.evaluation import nfe_report, toy2d_report

# dataset name -> (check of config.evaluate, the report)
_REPORTS = {
    "toy2d": (toy2d_report.check_config, toy2d_report.toy2d_report),
    "digits": (nfe_report.check_config, nfe_report.nfe_report),
}


def _report(config):
    name = config.data.name
    if name not in _REPORTS:
        raise ValueError(
            f"bad config: no built-in evaluation for dataset {name!r} (only {sorted(_REPORTS)}); drop 'evaluate' "
            "from the pipeline, use --mode=sample and compute FID on the .npz"
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
