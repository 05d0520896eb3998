"""Report tables: rows (dicts) as Markdown and CSV."""

from __future__ import annotations

import csv


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
