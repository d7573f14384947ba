"""Writing figures: atomically (a half-written file never appears), offline (plotly.js beside the
HTML), one function per kind so every figure of the workbook is saved the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_path


def save_matplotlib(fig: Any, path: str | Path | None, *, dpi: int = 110, tight: bool = True) -> Path | None:
    """Save a matplotlib Figure to ``path`` (format from the suffix, PNG when none); ``None`` = don't."""
    if path is None:
        return None
    p = Path(path)
    with atomic_path(p) as tmp:
        fmt = p.suffix.lstrip(".") or "png"
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None)
    return p


def save_plotly_html(fig: Any, path: str | Path | None) -> Path | None:
    """Write a plotly figure as HTML whose plotly.js is a ``plotly.min.js`` written once beside it
    (works offline); ``None`` = don't."""
    if path is None:
        return None
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.write_html(str(tmp), include_plotlyjs="directory")
    return p
