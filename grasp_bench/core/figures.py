"""Matplotlib without a display, and a figure as PNG bytes (written atomically by the caller)."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg back end (no display on servers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any, dpi: int | None = 110) -> bytes:
    """The figure as PNG (no software tag, so the bytes depend on the data only); closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    return buf.getvalue()
