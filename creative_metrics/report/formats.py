"""Number formats of the report: one per kind of metric, and differences between two models."""

from __future__ import annotations

import html
import math
from typing import Any, Optional

from creative_metrics.report.slices import is_number

MISSING = "&mdash;"

# Kinds: "ctr" (5 decimals), "share" (percent), "lift" (signed percent), "count", anything else 4 decimals.


def escape(text: Any) -> str:
    return html.escape(str(text))


def number(value: Optional[float], kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if kind == "ctr":
        return f"{value:.5f}"
    if kind == "share":
        return f"{value:.1%}"
    if kind == "lift":
        return f"{value:+.2%}"
    if kind == "count":
        return f"{value:,.0f}"
    return f"{value:.4f}"


def difference(value: float, base: float, kind: str, higher_is_better: Optional[bool] = None) -> str:
    """``value - base`` as an HTML span, green / red when the metric has a better direction."""
    if not (is_number(value) and is_number(base)):
        return MISSING
    d = value - base
    cls = ""
    if higher_is_better is not None and d != 0:
        cls = "pos" if (d > 0) == higher_is_better else "neg"
    if kind == "count":
        text = f"{d:+,.0f}"
    elif kind in ("share", "lift"):
        text = f"{d * 100:+.2f} pt"
    else:
        text = f"{d:+.5f}" if kind == "ctr" else f"{d:+.4f}"
        if base != 0 and kind == "ctr":
            text += f" ({d / abs(base):+.1%})"
    return f'<span class="{cls}">{text}</span>'
