"""Collect what the promotion dashboard shows from the MLflow registry and the versions' run artifacts.

Every artifact is optional (older versions lack some), so a missing one becomes "not recorded"
on the page. Errors reading the registry or the tracking server are never swallowed: a
dashboard that silently showed "nothing there" when the server was down would mislead.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from modops.dashboard.data import DashboardData, VersionRecord
from modops.registry.errors import ModelNotRegistered

__all__ = ["ARTIFACTS", "RegistryModelNotFound", "build_dashboard", "collect_dashboard_data", "log_site"]

# Run artifacts read per version (all optional); registration logs them (see promotion._log_evaluation).
ARTIFACTS = {
    "metrics": "evaluation/metrics.json",
    "plots": "evaluation/plots",
    "explain": "evaluation/explain",
    "gate": "evaluation/gate.json",
    "params": "lineage/params.yaml",
}
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


#: No such registered model (kept under this name for callers of the dashboard collector).
RegistryModelNotFound = ModelNotRegistered


def _missing(exc: MlflowException) -> bool:
    return exc.error_code == _NOT_FOUND


def _shown_uri(uri: str) -> str:
    """The tracking URI without any user:password part, for error messages."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


def _check_model(client: MlflowClient, name: str) -> None:
    """Fail with a next step when the model is not registered; any other registry error propagates."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not _missing(exc):
            raise
        raise RegistryModelNotFound(
            f"no registered model '{name}' in the MLflow registry at {_shown_uri(client.tracking_uri)}: "
            "run the training pipeline first (`make demo`)"
        ) from None


def _version_numbers(client: MlflowClient, name: str) -> list[str]:
    """Every version of ``name``, newest first (all result pages)."""
    if "'" in name:
        raise ValueError(f"model name {name!r} contains a quote, which MLflow's search filter cannot express")
    found, token = [], None
    while True:
        page = client.search_model_versions(f"name='{name}'", page_token=token)
        found += [str(mv.version) for mv in page]
        token = page.token
        if not token:
            break
    return sorted(set(found), key=lambda v: (len(v), v), reverse=True)


def _iso(ms: int | None) -> str:
    """An MLflow millisecond timestamp as ISO 8601 UTC; "" when unknown."""
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _listing(client: MlflowClient, run_id: str, path: str) -> list[str]:
    """Files directly under ``path`` in the run's artifacts; [] when absent or when the run is gone."""
    try:
        return [f.path for f in client.list_artifacts(run_id, path) if not f.is_dir]
    except MlflowException as exc:
        if _missing(exc):
            return []  # the run was deleted: its artifacts are "not recorded", not an outage
        raise


def _fetch(client: MlflowClient, run_id: str, path: str, dst: Path) -> Path | None:
    """Download one artifact file if the run has it; None when it does not."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if path not in _listing(client, run_id, parent):
        return None
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def _read_json(path: Path | None, what: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} is not valid JSON ({path}): {exc}") from None


def _read_curve(path: Path) -> list[dict[str, float]]:
    """A PR curve CSV (recall, precision, threshold) as rows of floats."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items() if k and v not in (None, "")} for row in csv.DictReader(fh)]


def _curves(client: MlflowClient, run_id: str, dst: Path) -> dict[str, list[dict[str, float]]]:
    """``evaluation/plots/pr_<category>.csv`` -> category -> points."""
    out = {}
    for path in sorted(_listing(client, run_id, ARTIFACTS["plots"])):
        stem = path.rsplit("/", 1)[-1]
        if stem.startswith("pr_") and stem.endswith(".csv"):
            local = Path(client.download_artifacts(run_id, path, str(dst)))
            out[stem.removeprefix("pr_").removesuffix(".csv")] = _read_curve(local)
    return out


def _explain(client: MlflowClient, run_id: str, dst: Path) -> dict[str, str]:
    """``evaluation/explain/*.png`` -> grid name -> local path."""
    out = {}
    for path in sorted(_listing(client, run_id, ARTIFACTS["explain"])):
        stem = path.rsplit("/", 1)[-1]
        if stem.lower().endswith(".png"):
            out[stem[:-4]] = str(client.download_artifacts(run_id, path, str(dst)))
    return out


def _gate_from_tags(tags: dict[str, str]) -> dict[str, Any] | None:
    """The verdict as far as the version tags tell (older versions have no ``gate.json``)."""
    if tags.get("modops.gate") not in ("passed", "failed"):
        return None
    reasons = [r for r in tags.get("modops.gate_reasons", "").splitlines() if r.strip()]
    return {"passed": tags["modops.gate"] == "passed", "reasons": reasons, "checks": []}


def _lineage(tags: dict[str, str], params: Path | None) -> dict[str, Any]:
    """Lineage from the version tags plus the logged ``params.yaml`` text (kept verbatim)."""
    holdout = tags.get("modops.holdout_hash") or tags.get("modops.holdout_version")
    out: dict[str, Any] = {
        "data_version": tags.get("modops.data_version"),
        "holdout_hash": holdout if holdout != "none" else None,
        "label_version": tags.get("modops.label_version") if tags.get("modops.label_version") != "None" else None,
        "git_revision": tags.get("modops.git_revision"),
        "started_from": tags.get("modops.started_from"),
    }
    if params is not None:
        text = params.read_text(encoding="utf-8")
        yaml.safe_load(text)  # fail loudly on a corrupt file instead of showing garbage as parameters
        out["params"] = text
    return {k: v for k, v in out.items() if v is not None}


def _collect_version(client: MlflowClient, name: str, version: str, work_dir: Path) -> VersionRecord:
    """One version's record: registry fields, tags, and its run's artifacts."""
    mv = client.get_model_version(name, version)  # aliases here; search results may omit them
    tags, run_id = dict(mv.tags or {}), mv.run_id or ""
    dst = work_dir / f"v{version}"
    metrics = gate_doc = params = None
    curves, images = {}, {}
    if run_id:
        metrics = _read_json(_fetch(client, run_id, ARTIFACTS["metrics"], dst), f"metrics.json of v{version}")
        gate_doc = _read_json(_fetch(client, run_id, ARTIFACTS["gate"], dst), f"gate.json of v{version}")
        params = _fetch(client, run_id, ARTIFACTS["params"], dst)
        curves, images = _curves(client, run_id, dst), _explain(client, run_id, dst)
    gate_doc = gate_doc or {}
    return VersionRecord(
        version=str(mv.version),
        created_at=_iso(mv.creation_timestamp),
        run_id=run_id,
        aliases=sorted(mv.aliases or []),
        description=mv.description or "",
        gate=gate_doc.get("gate") or _gate_from_tags(tags),
        metrics=metrics,
        champion_version=gate_doc.get("champion_version"),
        champion_metrics=gate_doc.get("champion_metrics"),
        pr_curves=curves,
        lineage=_lineage(tags, params),
        explain_images=images,
    )


def collect_dashboard_data(
    name: str,
    *,
    client: MlflowClient | None = None,
    work_dir: Path,
    audit: list[dict[str, Any]] | None = None,
    generated_at: str | None = None,
) -> DashboardData:
    """Read every version of registered model ``name`` into :class:`DashboardData`.

    Artifacts are downloaded under ``work_dir`` (Grad-CAM images stay there and the data
    points at them, so keep it until the site is built).

    Args:
        name: Registered model name.
        client: MLflow client; a default one (the configured tracking URI) when None.
        work_dir: Folder for downloaded artifacts.
        audit: The audit trail, newest first (see :data:`modops.dashboard.data.AUDIT_KEYS`).
        generated_at: ISO timestamp shown on the pages; now (UTC) when None.

    Raises:
        RegistryModelNotFound: No such registered model (train and register first).
        MlflowException: The registry or tracking server could not be read.
        ValueError: A logged JSON or YAML artifact is corrupt.
    """
    client = client or MlflowClient()
    _check_model(client, name)
    work_dir = Path(work_dir)
    records = [_collect_version(client, name, v, work_dir) for v in _version_numbers(client, name)]
    by_version = {r.version: r for r in records}
    for rec in records:
        # The overlay compares against the curves the champion logged when it was evaluated.
        compared = by_version.get(rec.champion_version or "")
        if compared is not None and compared.pr_curves:
            rec.champion_pr_curves = compared.pr_curves
    champion = next((r.version for r in records if "champion" in r.aliases), None)
    return DashboardData(
        model_name=name,
        generated_at=generated_at or datetime.now(tz=UTC).isoformat(timespec="seconds"),
        champion=champion,
        versions=records,
        audit=[dict(e) for e in audit or []],
    )


def log_site(
    site_dir: Path, *, run_id: str, client: MlflowClient | None = None, artifact_path: str = "dashboard"
) -> None:
    """Log a built dashboard as artifacts of a version's run, so the MLflow UI keeps the snapshot."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise FileNotFoundError(f"no dashboard at {site_dir}: run `modops dashboard build` first")
    (client or MlflowClient()).log_artifacts(run_id, str(site_dir), artifact_path)


def build_dashboard(settings: Any, *, log_to_run: str | None = None, out_dir: Path | None = None) -> Path:  # noqa: ANN401
    """Collect the registry (versions, artifacts, audit trail) and write the stakeholders' site.

    Args:
        settings: :class:`modops.config.Settings` (tracking URI, model name, state folder).
        log_to_run: Also log the built site to this run (the version just registered).
        out_dir: Where to write the site; ``settings.dashboard_dir`` by default.

    Returns:
        The site folder (``index.html`` inside).
    """
    import tempfile

    from modops.dashboard.site import build_site
    from modops.registry.audit import read_audit
    from modops.registry.tracking import configure_mlflow

    configure_mlflow(settings)
    client = MlflowClient()
    site = Path(out_dir or settings.dashboard_dir)
    with tempfile.TemporaryDirectory(prefix="modops-dashboard-") as tmp:
        _check_model(client, settings.model_name)
        audit = [e.to_dict() for e in read_audit(client, settings.model_name)]
        data = collect_dashboard_data(settings.model_name, client=client, work_dir=Path(tmp), audit=audit)
        build_site(data, site)
    if log_to_run is not None:
        log_site(site, run_id=log_to_run, client=client)
    return site
