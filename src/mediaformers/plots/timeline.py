"""A timeline picture: time on x, the top labels as lanes, each window's score as the lane's intensity."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import require_matplotlib, save


def top_lanes(scores: np.ndarray, lanes: int) -> list[int]:
    """The labels drawn: the ``lanes`` highest by their peak score over the windows, best first."""
    peak = scores.max(axis=0)
    return [int(i) for i in np.argsort(-peak, kind="stable")[:lanes]]


def plot_timeline(windows: list[tuple[float, float, Any]], id2label: dict[int, str], path: str | Path, *,
                  lanes: int = 8, segments: list[dict[str, Any]] | None = None, title: str | None = None) -> Path:
    """Draw ``(start, end, scores (labels,))`` windows to ``path`` (.png/.svg). Overlapping windows are drawn
    from their centre to the next centre, so every moment shows the window centred nearest it. ``segments``
    (records with label/start/end) are outlined on their lanes."""
    plt = require_matplotlib("--plot")
    if not windows:
        raise ValueError("plot: no windows to draw (the media gave none)")
    starts = np.array([w[0] for w in windows], np.float64)
    ends = np.array([w[1] for w in windows], np.float64)
    scores = np.stack([np.asarray(w[2], np.float32) for w in windows])
    order = top_lanes(scores, lanes)
    centres = (starts + ends) / 2
    edges = np.concatenate([[starts[0]], (centres[1:] + centres[:-1]) / 2, [ends[-1]]])
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(order) + 1.2))
    image = scores[:, order].T  # (lanes, windows)
    mesh = ax.pcolormesh(edges, np.arange(len(order) + 1), image, cmap="magma", vmin=0.0,
                         vmax=max(1.0, float(image.max())), shading="flat")
    ax.set_yticks(np.arange(len(order)) + 0.5, [id2label.get(i, str(i)) for i in order])
    ax.invert_yaxis()
    lane = {id2label.get(i, str(i)): k for k, i in enumerate(order)}
    for seg in segments or []:
        if seg["label"] in lane:
            ax.add_patch(plt.Rectangle((seg["start"], lane[seg["label"]] + 0.1), seg["end"] - seg["start"], 0.8,
                                       fill=False, edgecolor="#2ec4b6", linewidth=1.5))
    ax.set_xlabel("time (s)")
    fig.colorbar(mesh, ax=ax, label="score", pad=0.01)
    if title:
        ax.set_title(title, fontsize=10)
    return save(fig, path)
