"""Number and text formatting shared by the pages and the tests (one place decides how a number looks)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "NOT_RECORDED",
    "as_float",
    "fmt_ci",
    "fmt_count",
    "fmt_delta_num",
    "fmt_delta_pts",
    "fmt_num",
    "fmt_pct",
    "fmt_pct_ci",
    "fmt_value",
    "fmt_when",
]

NOT_RECORDED = "not recorded"
_NA = "n/a"


def as_float(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is missing, non-numeric or NaN."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fmt_pct(value: Any, *, digits: int = 1) -> str:
    """A proportion in [0, 1] as a percentage: ``0.9234 -> "92.3%"``; ``n/a`` when unknown."""
    v = as_float(value)
    return _NA if v is None else f"{v * 100:.{digits}f}%"


def fmt_ci(low: Any, high: Any, *, digits: int = 1) -> str:
    """A confidence interval of proportions: ``"88.1–95.2%"``; "" when either end is unknown."""
    lo, hi = as_float(low), as_float(high)
    if lo is None or hi is None:
        return ""
    return f"{lo * 100:.{digits}f}–{hi * 100:.{digits}f}%"


def fmt_pct_ci(row: dict[str, Any] | None, metric: str) -> tuple[str, str]:
    """``(value, interval)`` of ``metric`` in a holdout row, e.g. ``("92.3%", "CI 88.1–95.2%")``."""
    if not row:
        return _NA, ""
    ci = fmt_ci(row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"))
    return fmt_pct(row.get(metric)), f"CI {ci}" if ci else ""


def fmt_num(value: Any, *, digits: int = 3) -> str:
    """A score such as PR-AUC or a threshold: ``0.91347 -> "0.913"``; ``n/a`` when unknown."""
    v = as_float(value)
    return _NA if v is None else f"{v:.{digits}f}"


def fmt_count(value: Any) -> str:
    """A count with thousands separators: ``12345 -> "12,345"``; ``n/a`` when unknown."""
    v = as_float(value)
    return _NA if v is None else f"{int(round(v)):,}"


def fmt_delta_pts(new: Any, old: Any) -> str:
    """Change between two proportions in percentage points: ``"+5.0 pts"``; "" when unknown."""
    a, b = as_float(new), as_float(old)
    return "" if a is None or b is None else f"{(a - b) * 100:+.1f} pts"


def fmt_delta_num(new: Any, old: Any) -> str:
    """Change between two scores: ``"+0.050"``; "" when unknown."""
    a, b = as_float(new), as_float(old)
    return "" if a is None or b is None else f"{a - b:+.3f}"


def fmt_value(value: Any) -> str:
    """Any scalar from a gate check: floats to 3 decimals, booleans as yes/no, None as n/a."""
    if value is None:
        return _NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return fmt_num(value) if isinstance(value, float) else fmt_count(value)
    return str(value)


def fmt_when(value: Any) -> str:
    """An ISO 8601 timestamp as ``"2026-05-01 12:30 UTC"``; unparseable text is shown as it is."""
    if not value:
        return NOT_RECORDED
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if when.tzinfo is None:
        return when.strftime("%Y-%m-%d %H:%M")
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
