"""matplotlib for the experiment modules, headless; plots are skipped when it is not installed."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or None when matplotlib is missing
    (install it with ``pip install -e ".[plot]"``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig, path, dpi: int = 120) -> bool:
    """Lays out ``fig``, writes it to ``path`` and closes it; True (the plot was written)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return True
