"""Report artifacts: rows as Markdown and CSV tables, figures without pyplot, and the one writer
every report uses (:func:`write_report`: json, md, csv and figures, on process 0)."""

from __future__ import annotations

import csv
import json
import os
from typing import Callable, Mapping, Optional, Sequence

import jax

from kacjax.runtime import logs
from kacjax.training.rundir import RunDir


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(rows, columns) -> str:
    """A Markdown table of ``rows`` (dicts) with ``columns``."""
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_csv(path, rows, columns) -> None:
    """Writes ``rows`` (dicts) with ``columns`` as a CSV file with a header."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def subplots(ncols: int, figsize, **kw):
    """A ``(figure, axes)`` pair with ``ncols`` panels in one row (``matplotlib.figure.Figure.subplots``);
    no pyplot, so nothing global changes and a notebook's own plotting keeps its backend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(1, ncols, **kw)


def save(fig, path: str) -> None:
    """Writes ``fig`` to ``path`` (PNG at 110 dpi), laid out tightly."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(layout: RunDir, name: str, report: dict, *,
                 table: Optional[tuple[Sequence[dict], Sequence[str]]] = None,
                 files: Optional[Mapping[str, Callable[[str], None]]] = None) -> None:
    """Writes a report's artifacts beside the run, on process 0 only (the others return at once).

    ``name.json``: ``report`` (indented); with ``table = (rows, columns)``, ``name.md`` (the rows as
    a Markdown table) and ``name.csv``; then each of ``files`` in order, ``{path relative to the
    run: write(absolute path)}`` (figures, sample grids, pages), its folder made first.
    """
    if jax.process_index() != 0:
        return
    written = [f"{name}.json"]
    with open(layout.report(f"{name}.json"), "w") as f:
        json.dump(report, f, indent=2)
    if table is not None:
        rows, columns = table
        with open(layout.report(f"{name}.md"), "w") as f:
            f.write(markdown_table(rows, columns))
        write_csv(layout.report(f"{name}.csv"), rows, columns)
        written += [f"{name}.md", f"{name}.csv"]
    for relative, write in (files or {}).items():
        path = layout.report(relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write(path)
        written.append(relative)
    logs.info(f"wrote {', '.join(written)} in {layout.root}")
