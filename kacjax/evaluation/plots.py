"""Figures without pyplot: nothing global changes, so a notebook's own plotting keeps its backend."""

from __future__ import annotations


def subplots(ncols: int, figsize, **kw):
    """A ``(figure, axes)`` pair with ``ncols`` panels in one row (``matplotlib.figure.Figure.subplots``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(1, ncols, **kw)


def save(fig, path: str) -> None:
    """Writes ``fig`` to ``path`` (PNG at 110 dpi), laid out tightly."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
