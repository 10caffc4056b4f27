"""Pictures: timelines, training curves, confusion matrices, MAE reconstructions, attention heat maps.

Drawing needs matplotlib, an optional extra (``pip install 'mediaformers[plot]'``); everything else in
the library works without it. Pictures are written as PNG or SVG, by the file's suffix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

SUFFIXES = (".png", ".svg")


def check_picture_path(path: str | Path, flag: str = "--plot") -> Path:
    """A picture's path, checked before any work: a .png or .svg whose folder exists or can be made."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{flag}: expected a .png or .svg file, got {path.name!r}")
    if path.is_dir():
        raise ValueError(f"{flag}: expected a file, got the folder {path}")
    require_matplotlib(flag)
    return path


def require_matplotlib(what: str = "plotting") -> Any:
    """``matplotlib.pyplot`` on a file-only backend, or a one-line error naming the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError(f"{what}: drawing pictures needs matplotlib; install it with "
                         "pip install 'mediaformers[plot]'") from None
    matplotlib.use("Agg", force=False)  # files only: no display needed, none opened
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (its folder made) and close it (figures otherwise stay in pyplot's registry)."""
    plt = require_matplotlib()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
