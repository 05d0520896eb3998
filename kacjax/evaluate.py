"""The ``evaluate`` mode: each experiment's metrics and figures."""

from __future__ import annotations


def evaluate(config, workdir: str) -> dict:
    """Runs the evaluation that fits ``config.data.name`` and returns its metrics."""
    name = config.data.name
    if name == "toy2d":
        from kacjax.toy2d_report import toy2d_report

        return toy2d_report(config, workdir)
    if name == "digits":
        from kacjax.nfe_report import nfe_report

        return nfe_report(config, workdir)
    raise ValueError(
        f"no built-in evaluation for dataset {name!r}; use --mode=sample and compute FID on the .npz"
    )
