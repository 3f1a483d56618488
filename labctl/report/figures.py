"""Figures on matplotlib's Agg canvas, without pyplot.

pyplot keeps one figure list per process and numbers new figures from it without a
lock: channels that write reports at once (threads of one `labctl run`) could draw into
each other's figures. A figure made here belongs to its caller alone.
"""

from __future__ import annotations

from typing import Any


def agg_figure(width_in: float, height_in: float, dpi: float = 100) -> Any:
    """A matplotlib Figure with its own Agg canvas (`fig.savefig` works; nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig
