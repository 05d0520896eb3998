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


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


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

    With ``table = (rows, columns)``, ``name.md`` (the rows as a Markdown table) and ``name.csv``;
    then each of ``files`` in order, ``{path relative to the run: write(absolute path)}`` (figures,
    sample grids, pages), its folder made first; ``name.json`` (``report``, indented) last. Each file
    is written beside its place and moved there whole, so a kill or a full disk never leaves one cut
    short, and the JSON, which reports reuse, exists only once everything else does.
    """
    if jax.process_index() != 0:
        return
    writers = {}
    if table is not None:
        rows, columns = table
        writers[f"{name}.md"] = lambda path: _write_text(path, markdown_table(rows, columns))
        writers[f"{name}.csv"] = lambda path: write_csv(path, rows, columns)
    writers.update(files or {})
    writers[f"{name}.json"] = lambda path: _write_text(path, json.dumps(report, indent=2))
    for relative, write in writers.items():
        path = layout.report(relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        stem, ext = os.path.splitext(path)
        partial = f"{stem}.partial{ext}"  # the same extension: writers pick the format from it
        try:
            write(partial)
            os.replace(partial, path)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise
    written = list(writers)
    logs.info(f"wrote {', '.join(written)} in {layout.root}")
