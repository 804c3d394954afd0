"""Plotly figures for the dashboard, rendered as ``<div>`` snippets that use a local plotly.js.

Figures are built only from the data passed in and get fixed element ids, so the same data
always renders the same bytes. Each chart is a visual summary: the pages also show its
numbers in a table, which is what screen readers and copy-paste use.
"""

from __future__ import annotations

from typing import Any

from modops.dashboard.fmt import as_float

__all__ = ["history_figure", "metrics_figure", "pr_figure", "review_figure", "to_div"]

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_CANDIDATE, _CHAMPION = "#1f4e79", "#9aa5b1"
_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def _go() -> Any:
    # Imported lazily: plotly is only needed while building pages, not to import this package.
    import plotly.graph_objects as go

    return go


def _layout(fig: Any, *, title: str, xaxis: dict, yaxis: dict, **extra: Any) -> Any:
    """Shared look: white template, left-aligned title, legend under the plot (overridable)."""
    extra = {"legend": {"orientation": "h", "y": -0.2}, **extra}
    fig.update_layout(
        title={"text": title, "x": 0},
        template="plotly_white",
        xaxis=xaxis,
        yaxis=yaxis,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
        **extra,
    )
    return fig


def to_div(fig: Any, div_id: str, *, height: int = 420) -> str:
    """The figure as an HTML ``<div>`` plus inline script; plotly.js itself is loaded by the page."""
    import plotly.io as pio

    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=_CONFIG,
        default_height=f"{height}px",
        validate=True,
    )


def _curve(points: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Recall and precision lists, skipping points with a missing value."""
    xs, ys = [], []
    for p in points:
        r, pr = as_float(p.get("recall")), as_float(p.get("precision"))
        if r is not None and pr is not None:
            xs.append(r)
            ys.append(pr)
    return xs, ys


def pr_figure(
    curves: dict[str, list[dict[str, Any]]],
    *,
    version: str,
    champion_curves: dict[str, list[dict[str, Any]]] | None,
    champion_version: str | None,
    operating: dict[str, tuple[float, float]],
) -> Any | None:
    """PR curves per category, the champion's dashed underneath; markers at the operating points."""
    go = _go()
    fig = go.Figure()
    cats = list(curves) + [c for c in (champion_curves or {}) if c not in curves]
    for i, cat in enumerate(cats):
        color = _PALETTE[i % len(_PALETTE)]
        if champion_curves and cat in champion_curves:
            xs, ys = _curve(champion_curves[cat])
            name = f"{cat}: champion v{champion_version}" if champion_version else f"{cat}: champion"
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line={"color": color, "dash": "dash"}))
        if cat in curves:
            xs, ys = _curve(curves[cat])
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{cat}: v{version}", line={"color": color}))
        if cat in operating:
            r, p = operating[cat]
            fig.add_trace(
                go.Scatter(
                    x=[r],
                    y=[p],
                    mode="markers",
                    name=f"{cat}: operating point",
                    marker={"color": color, "size": 11, "symbol": "diamond", "line": {"color": "white", "width": 1}},
                )
            )
    if not fig.data:
        return None
    return _layout(
        fig,
        title="Precision-recall curves" + (" (dashed: champion)" if champion_curves else ""),
        xaxis={"title": "Recall", "range": [0, 1.02], "tickformat": ".0%"},
        yaxis={"title": "Precision", "range": [0, 1.02], "tickformat": ".0%"},
    )


def _bar(go: Any, rows: list[dict[str, Any]], metric: str, *, who: str, label: str, color: str) -> Any:
    """One bar per category with its confidence interval as an asymmetric error bar."""
    xs, ys, plus, minus = [], [], [], []
    for row in rows:
        src = row.get(who) or {}
        v = as_float(src.get(metric))
        if v is None:
            continue
        lo, hi = as_float(src.get(f"{metric}_ci_low")), as_float(src.get(f"{metric}_ci_high"))
        xs.append(row["category"])
        ys.append(v)
        plus.append(max(0.0, hi - v) if hi is not None else 0.0)
        minus.append(max(0.0, v - lo) if lo is not None else 0.0)
    error = {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "visible": True}
    return go.Bar(x=xs, y=ys, name=label, marker={"color": color}, error_y=error)


def metrics_figure(rows: list[dict[str, Any]], *, version: str, champion_version: str | None) -> Any | None:
    """Grouped bars of precision and recall per category with CIs, the version next to its champion."""
    from plotly.subplots import make_subplots

    go = _go()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Precision", "Recall"), shared_yaxes=True)
    champ = f"champion v{champion_version}" if champion_version else "champion"
    for col, metric in enumerate(("precision", "recall"), start=1):
        show = col == 1  # one legend entry per series, not one per panel
        cand = _bar(go, rows, metric, who="candidate", label=f"v{version}", color=_CANDIDATE)
        fig.add_trace(cand.update(showlegend=show, legendgroup="cand"), row=1, col=col)
        if any(r.get("champion") for r in rows):
            base = _bar(go, rows, metric, who="champion", label=champ, color=_CHAMPION)
            fig.add_trace(base.update(showlegend=show, legendgroup="champ"), row=1, col=col)
    if not any(len(t.x) for t in fig.data):
        return None
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return _layout(
        fig,
        title="Precision and recall with confidence intervals",
        xaxis={},
        yaxis={"range": [0, 1.05], "tickformat": ".0%"},
        barmode="group",
    )


def review_figure(review: dict[str, Any]) -> Any | None:
    """Stacked shares of uploads: this version's routing against reviewing everything by hand."""
    go = _go()
    parts = [("auto_allowed", "Auto-allowed", "#2ca02c"), ("auto_blocked", "Auto-blocked", "#d62728")]
    parts.append(("human_review", "Human review", "#ff7f0e"))
    if any(as_float(review.get(key)) is None for key, _, _ in parts):
        return None
    fig = go.Figure()
    rows = ["This version", "Review everything"]
    for key, label, color in parts:
        baseline = 1.0 if key == "human_review" else 0.0
        fig.add_trace(
            go.Bar(
                y=rows,
                x=[as_float(review[key]), baseline],
                name=label,
                orientation="h",
                marker={"color": color},
                hovertemplate="%{y}: %{x:.1%}<extra>" + label + "</extra>",
            )
        )
    return _layout(
        fig,
        title="Where uploads go at the chosen thresholds",
        xaxis={"range": [0, 1], "tickformat": ".0%", "title": "Share of uploads"},
        yaxis={"autorange": "reversed"},
        barmode="stack",
        legend={"orientation": "h", "y": -0.35, "traceorder": "normal"},
    )


def history_figure(points: list[tuple[str, dict[str, float]]]) -> Any | None:
    """PR-AUC per category across versions, oldest first; ``points`` is ``[(version, {cat: pr_auc})]``."""
    go = _go()
    cats: list[str] = []
    for _, values in points:
        cats += [c for c in values if c not in cats]
    fig = go.Figure()
    for i, cat in enumerate(cats):
        xs = [f"v{v}" for v, values in points if cat in values]
        ys = [values[cat] for _, values in points if cat in values]
        color = _PALETTE[i % len(_PALETTE)]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=cat, line={"color": color}))
    if not fig.data:
        return None
    return _layout(
        fig,
        title="PR-AUC per category, by version",
        xaxis={"title": "Model version", "type": "category"},
        yaxis={"title": "PR-AUC", "range": [0, 1.02]},
    )
