"""View models: the dashboard data turned into plain, already formatted values for the templates.

Keeping every decision (wording, formatting, what is missing) here leaves the templates as
markup only, and lets tests check the wording without a browser.
"""

from __future__ import annotations

import re
from statistics import fmean
from typing import Any

from modops.dashboard.data import AUDIT_KEYS, DashboardData, VersionRecord
from modops.dashboard.fmt import (
    NOT_RECORDED,
    as_float,
    fmt_count,
    fmt_delta_num,
    fmt_delta_pts,
    fmt_num,
    fmt_pct,
    fmt_pct_ci,
    fmt_value,
    fmt_when,
)

__all__ = ["audit_rows", "explain_file_name", "headline", "version_rows", "version_view"]

CHAMPION_ALIAS = "champion"
_CHECK_NAMES = {
    "min_precision": "Precision floor",
    "min_recall": "Recall floor",
    "min_pr_auc": "PR-AUC floor",
    "regression": "No regression vs champion",
    "present": "Still evaluated",
}
_CHECK_BASE = ("category", "check", "value", "limit", "passed")
_EXTRA_NAMES = {
    "point": "Point estimate",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "p_worse": "P(worse)",
    "confidence": "Confidence",
    "metric": "Metric",
}
_ACTIONS = {
    "register": "Registered",
    "promote": "Promoted",
    "rollback": "Rolled back",
    "gate_failed": "Failed the gate",
    "rebaseline": "Re-baselined",
}


def holdout(metrics: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The per-category holdout rows of a metrics.json, or {} when not recorded."""
    return dict((metrics or {}).get("holdout") or {})


def macro(metrics: dict[str, Any] | None) -> dict[str, float | None]:
    """Macro precision, recall and PR-AUC: the recorded ``macro`` block, else the mean over categories."""
    recorded = (metrics or {}).get("macro") or {}
    rows = holdout(metrics)
    out: dict[str, float | None] = {}
    for key in ("precision", "recall", "pr_auc"):
        value = as_float(recorded.get(key))
        if value is None:
            values = [v for v in (as_float(r.get(key)) for r in rows.values()) if v is not None]
            value = fmean(values) if values else None
        out[key] = value
    return out


def verdict_word(gate: dict[str, Any] | None) -> tuple[str, str]:
    """``(plain words, css class)`` for a gate verdict."""
    if not gate or "passed" not in gate:
        return "No gate verdict recorded", "unknown"
    return ("Passed the gate", "pass") if gate["passed"] else ("Failed the gate", "fail")


def is_champion(rec: VersionRecord, data: DashboardData) -> bool:
    """Whether ``rec`` is the current champion (alias or the data's champion field)."""
    return rec.version == data.champion or CHAMPION_ALIAS in rec.aliases


def verdict_sentence(rec: VersionRecord, data: DashboardData) -> str:
    """One sentence a stakeholder can read: what the gate said and what happened to the version."""
    if is_champion(rec, data):
        return f"Version {rec.version} is the current champion: it serves moderation decisions now."
    gate = rec.gate or {}
    if "passed" not in gate:
        return f"Version {rec.version} has no recorded gate verdict; it is not the champion."
    if gate["passed"]:
        return f"Version {rec.version} passed the gate but is not the champion now (see the audit trail)."
    stays = f" The champion stays version {data.champion}." if data.champion else " There is no champion yet."
    return f"Version {rec.version} failed the gate and was not promoted.{stays}"


def _categories(rec: VersionRecord) -> list[str]:
    """Categories of the version first, then any only the compared champion had."""
    cats = list(holdout(rec.metrics))
    return cats + [c for c in (rec.champion_metrics or {}) if c not in cats]


def metric_rows(rec: VersionRecord) -> list[dict[str, Any]]:
    """Per category: the version's and the champion's precision, recall and PR-AUC, formatted."""
    own, champ = holdout(rec.metrics), rec.champion_metrics or {}
    rows = []
    for cat in _categories(rec):
        c, b = own.get(cat), champ.get(cat)
        row: dict[str, Any] = {"category": cat, "candidate": c, "champion": b, "missing": c is None}
        for metric in ("precision", "recall"):
            row[metric], row[f"{metric}_ci"] = fmt_pct_ci(c, metric)
            row[f"champ_{metric}"], row[f"champ_{metric}_ci"] = fmt_pct_ci(b, metric) if b else ("", "")
            row[f"delta_{metric}"] = fmt_delta_pts((c or {}).get(metric), (b or {}).get(metric))
        row["pr_auc"] = fmt_num((c or {}).get("pr_auc")) if c else "n/a"
        row["champ_pr_auc"] = fmt_num(b.get("pr_auc")) if b else ""
        row["delta_pr_auc"] = fmt_delta_num((c or {}).get("pr_auc"), (b or {}).get("pr_auc"))
        rows.append(row)
    return rows


def count_rows(rec: VersionRecord) -> list[dict[str, str]]:
    """Counts at the operating point per category; true negatives when the holdout size is known."""
    n = as_float((rec.metrics or {}).get("n_holdout"))
    rows = []
    for cat, row in holdout(rec.metrics).items():
        tp, fp, fn = (as_float(row.get(k)) for k in ("tp", "fp", "fn"))
        tn = n - tp - fp - fn if None not in (n, tp, fp, fn) else None
        rows.append(
            {
                "category": cat,
                "threshold": fmt_num(row.get("threshold")),
                "support": fmt_count(row.get("support")),
                "tp": fmt_count(tp),
                "fp": fmt_count(fp),
                "fn": fmt_count(fn),
                "tn": fmt_count(tn),
                "flagged": fmt_count(tp + fp) if None not in (tp, fp) else "n/a",
            }
        )
    return rows


def check_rows(gate: dict[str, Any] | None) -> tuple[list[str], list[dict[str, Any]]]:
    """The gate's checks: extra column names (e.g. a paired bootstrap's CI) and formatted rows."""
    checks = list((gate or {}).get("checks") or [])
    extras: list[str] = []
    for check in checks:
        extras += [k for k in check if k not in _CHECK_BASE and k not in extras]
    rows = []
    for check in checks:
        name = str(check.get("check", ""))
        passed = check.get("passed")
        rows.append(
            {
                "category": str(check.get("category", "")),
                "check": _CHECK_NAMES.get(name, name.replace("_", " ")),
                "value": fmt_value(check.get("value")),
                "limit": fmt_value(check.get("limit")),
                "passed": "Pass" if passed else "Fail",
                "css": "pass" if passed else "fail",
                "extras": [fmt_value(check.get(k)) if k in check else "" for k in extras],
            }
        )
    return [_EXTRA_NAMES.get(k, k.replace("_", " ")) for k in extras], rows


def review_view(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The review load at the chosen thresholds, formatted; None when not recorded."""
    review = (metrics or {}).get("review_load")
    if not isinstance(review, dict):
        return None
    human = as_float(review.get("human_review"))
    reduction = as_float(review.get("review_reduction"))
    if reduction is None and human is not None:
        reduction = 1.0 - human  # the saving against sending every upload to a person
    blocks, reviews = review.get("block_thresholds") or {}, review.get("review_thresholds") or {}
    return {
        "raw": review,
        "n": fmt_count(review.get("n")),
        "auto_allowed": fmt_pct(review.get("auto_allowed")),
        "auto_blocked": fmt_pct(review.get("auto_blocked")),
        "human_review": fmt_pct(human),
        "reduction": fmt_pct(reduction),
        "thresholds": [
            {"category": c, "block": fmt_num(blocks.get(c)), "review": fmt_num(reviews.get(c))}
            for c in list(blocks) + [c for c in reviews if c not in blocks]
        ],
    }


def lineage_view(rec: VersionRecord) -> dict[str, Any]:
    """Lineage rows (label, value) and the training parameters as text."""
    lin = rec.lineage or {}
    label = lin.get("label_version") or (rec.metrics or {}).get("label_version")
    rows = [
        ("Data version", lin.get("data_version")),
        ("Holdout hash", lin.get("holdout_hash")),
        ("Label version", label),
        ("Trained from", lin.get("started_from")),
        ("Git revision", lin.get("git_revision")),
        ("MLflow run", rec.run_id),
    ]
    return {
        "rows": [(k, str(v) if v not in (None, "", "None") else NOT_RECORDED) for k, v in rows],
        "params": params_text(lin.get("params")),
    }


def params_text(params: Any) -> str | None:
    """Training parameters as YAML text: kept verbatim when given as text, dumped when a dict."""
    if params is None or params == "" or params == {}:
        return None
    if isinstance(params, str):
        return params
    import yaml

    return yaml.safe_dump(params, sort_keys=False, default_flow_style=False, allow_unicode=True)


def explain_file_name(name: str) -> str:
    """A safe, stable file name for a Grad-CAM grid."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "grid"


def explain_views(rec: VersionRecord) -> list[dict[str, str]]:
    """Grad-CAM grids: page-relative source, a caption and alt text, sorted by name."""
    out = []
    for name in sorted(rec.explain_images):
        stem = name.removesuffix(".png")
        caption = stem.replace("_", " ")
        out.append(
            {
                "src": f"{rec.version}/explain/{explain_file_name(stem)}.png",
                "caption": caption,
                "alt": f"Grad-CAM grid '{caption}' for version {rec.version}: holdout images with a heat map "
                "over the regions that drove the model's score.",
            }
        )
    return out


def operating_points(rec: VersionRecord) -> dict[str, tuple[float, float]]:
    """Category -> (recall, precision) at the chosen threshold."""
    out = {}
    for cat, row in holdout(rec.metrics).items():
        r, p = as_float(row.get("recall")), as_float(row.get("precision"))
        if r is not None and p is not None:
            out[cat] = (r, p)
    return out


def version_view(rec: VersionRecord, data: DashboardData) -> dict[str, Any]:
    """Everything one version page shows, formatted."""
    word, css = verdict_word(rec.gate)
    extras, checks = check_rows(rec.gate)
    metrics = rec.metrics or {}
    return {
        "version": rec.version,
        "created": fmt_when(rec.created_at),
        "aliases": list(rec.aliases),
        "description": rec.description,
        "is_champion": is_champion(rec, data),
        "verdict_word": word,
        "verdict_css": css,
        "sentence": verdict_sentence(rec, data),
        "reasons": [str(r) for r in (rec.gate or {}).get("reasons") or []],
        "check_extras": extras,
        "checks": checks,
        "champion_version": rec.champion_version,
        "champion_linked": data.version(rec.champion_version) is not None,
        "has_metrics": bool(holdout(rec.metrics)),
        "metric_rows": metric_rows(rec),
        "count_rows": count_rows(rec),
        "n_holdout": fmt_count(metrics.get("n_holdout")) if "n_holdout" in metrics else NOT_RECORDED,
        "n_val": fmt_count(metrics.get("n_val")) if "n_val" in metrics else NOT_RECORDED,
        "kind": metrics.get("kind") or NOT_RECORDED,
        "stage2_share": fmt_pct((metrics.get("stage2_share") or {}).get("holdout")),
        "review": review_view(rec.metrics),
        "lineage": lineage_view(rec),
        "explain": explain_views(rec),
    }


def version_rows(data: DashboardData) -> list[dict[str, Any]]:
    """The index's table of versions, newest first."""
    rows = []
    for rec in data.versions:
        word, css = verdict_word(rec.gate)
        m = macro(rec.metrics)
        review = review_view(rec.metrics)
        rows.append(
            {
                "version": rec.version,
                "created": fmt_when(rec.created_at),
                "aliases": ", ".join(rec.aliases) or "—",
                "verdict_word": word,
                "verdict_css": css,
                "is_champion": is_champion(rec, data),
                "precision": fmt_pct(m["precision"]) if rec.metrics else NOT_RECORDED,
                "recall": fmt_pct(m["recall"]) if rec.metrics else NOT_RECORDED,
                "pr_auc": fmt_num(m["pr_auc"]) if rec.metrics else NOT_RECORDED,
                "reduction": review["reduction"] if review else NOT_RECORDED,
            }
        )
    return rows


def _audit_sentence(event: dict[str, Any]) -> str:
    """An audit event in plain words, e.g. "alice rolled champion back from version 3 to version 2"."""
    who = event.get("who") or "someone"
    action, alias = event.get("action") or "", event.get("alias") or "champion"
    src, dst = event.get("from_version"), event.get("to_version")
    if action == "promote":
        text = f"{who} promoted version {dst} to {alias}" + (f", replacing version {src}" if src else "")
    elif action == "rollback":
        text = f"{who} rolled {alias} back from version {src} to version {dst}"
    elif action == "gate_failed":
        text = f"version {dst} failed the gate; {alias} unchanged" + (f" (version {src})" if src else "")
    elif action == "register":
        text = f"{who} registered version {dst}"
    else:
        text = f"{who}: {action.replace('_', ' ')} {alias} {src or '—'} → {dst or '—'}"
    reason = event.get("reason")
    return f"{text}: {reason}" if reason else text


def audit_rows(data: DashboardData) -> list[dict[str, Any]]:
    """The audit trail, newest first, formatted; unknown keys are ignored, missing ones shown as —."""
    rows = []
    for event in data.audit:
        e = {k: event.get(k) for k in AUDIT_KEYS}
        for key in ("from_version", "to_version"):  # versions may arrive as ints from JSON
            e[key] = None if e[key] in (None, "") else str(e[key])
        action = str(e["action"] or "")
        rows.append(
            {
                "when": fmt_when(e["when"]),
                "who": e["who"] or "—",
                "action": _ACTIONS.get(action, action.replace("_", " ").capitalize() or "—"),
                "css": action or "other",
                "alias": e["alias"] or "—",
                "from_version": e["from_version"],
                "to_version": e["to_version"],
                "from_linked": data.version(e["from_version"]) is not None,
                "to_linked": data.version(e["to_version"]) is not None,
                "reason": e["reason"] or "",
                "sentence": _audit_sentence(e),
            }
        )
    return rows


def _changes(rec: VersionRecord) -> list[str]:
    """The version's per-category precision and recall moves against the champion it was compared with."""
    own, champ = holdout(rec.metrics), rec.champion_metrics or {}
    out = []
    for cat in own:
        if cat not in champ:
            continue
        for metric in ("precision", "recall"):
            a, b = own[cat].get(metric), champ[cat].get(metric)
            delta = fmt_delta_pts(a, b)
            if delta:
                out.append(f"{cat} {metric} {fmt_pct(b)} → {fmt_pct(a)} ({delta})")
    return out


def headline(data: DashboardData) -> dict[str, Any]:
    """The index's headline: the champion, its key numbers, the latest candidate and the latest change."""
    champ = data.version(data.champion) if data.champion else None
    out: dict[str, Any] = {"champion": data.champion, "champion_linked": champ is not None}
    if champ is not None:
        m = macro(champ.metrics)
        review = review_view(champ.metrics)
        out.update(
            precision=fmt_pct(m["precision"]) if champ.metrics else NOT_RECORDED,
            recall=fmt_pct(m["recall"]) if champ.metrics else NOT_RECORDED,
            pr_auc=fmt_num(m["pr_auc"]) if champ.metrics else NOT_RECORDED,
            reduction=review["reduction"] if review else None,
            since=_promoted_at(data, champ),
        )
    latest = data.versions[0] if data.versions else None
    if latest is not None:
        word, css = verdict_word(latest.gate)
        out["latest"] = {
            "version": latest.version,
            "word": word,
            "css": css,
            "sentence": verdict_sentence(latest, data),
            "reasons": [str(r) for r in (latest.gate or {}).get("reasons") or []][:3],
            "changes": _changes(latest),
            "compared_with": latest.champion_version,
        }
    out["last_event"] = audit_rows(data)[0]["sentence"] if data.audit else None
    out["last_event_when"] = fmt_when(data.audit[0].get("when")) if data.audit else None
    return out


def _promoted_at(data: DashboardData, champ: VersionRecord) -> str:
    """When the champion last got the alias: the newest promote/rollback event to it, else its registration."""
    for event in data.audit:
        if event.get("action") in ("promote", "rollback") and str(event.get("to_version")) == champ.version:
            return fmt_when(event.get("when"))
    return fmt_when(champ.created_at)


def history_points(data: DashboardData) -> list[tuple[str, dict[str, float]]]:
    """PR-AUC per category for every version with metrics, oldest first (for the trend chart)."""
    points = []
    for rec in reversed(data.versions):
        values = {c: as_float(r.get("pr_auc")) for c, r in holdout(rec.metrics).items()}
        values = {c: v for c, v in values.items() if v is not None}
        if values:
            points.append((rec.version, values))
    return points
