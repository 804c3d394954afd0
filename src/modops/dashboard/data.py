"""What the promotion dashboard shows, as plain typed records (no MLflow, no rendering).

The collector (:mod:`modops.registry.dashboard_data`) fills these from the registry; the
renderer (:mod:`modops.dashboard.site`) turns them into pages. Every part is JSON-able, so
a data set can be written to disk, diffed, or built by hand in a test.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AUDIT_KEYS", "DashboardData", "VersionRecord", "check_version_name"]

# The keys of one audit event; every one is optional when rendering (an old trail may lack some).
AUDIT_KEYS = ("when", "who", "action", "alias", "from_version", "to_version", "reason")

# Versions become file names (versions/<version>.html), so they must be safe path parts.
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_version_name(version: str) -> str:
    """Return ``version`` when it is safe as a file name; raise ValueError otherwise."""
    if not _SAFE_VERSION.fullmatch(version) or ".." in version:
        raise ValueError(f"model version {version!r} is not a safe page name (letters, digits, '.', '_', '-')")
    return version


@dataclass
class VersionRecord:
    """One registered model version and everything recorded about it.

    Attributes:
        version: The registry version, e.g. ``"3"``.
        created_at: When it was registered, ISO 8601.
        run_id: The MLflow run holding its artifacts ("" when unknown).
        aliases: Registry aliases on it now, e.g. ``["champion", "challenger"]``.
        description: The registry description (free text, user-influenced).
        gate: The gate verdict ``{"passed", "reasons", "checks"}``, or None when not recorded.
        metrics: The version's evaluation ``metrics.json``, or None when not recorded.
        champion_version: The champion it was compared with at registration, or None.
        champion_metrics: That champion's holdout metrics (category -> metric dict), or None.
        pr_curves: Category -> PR curve points ``{"recall", "precision", "threshold"}``.
        champion_pr_curves: The compared champion's PR curves, or None.
        lineage: ``data_version``, ``holdout_hash``, ``label_version``, ``git_revision``,
            ``started_from`` (the model a relabel round's training fine-tuned, or ``train.pretrained``),
            ``params`` (a dict or the YAML text); any may be missing.
        explain_images: Grad-CAM grid name -> local PNG path.
    """

    version: str
    created_at: str = ""
    run_id: str = ""
    aliases: list[str] = field(default_factory=list)
    description: str = ""
    gate: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    champion_version: str | None = None
    champion_metrics: dict[str, dict[str, Any]] | None = None
    pr_curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    champion_pr_curves: dict[str, list[dict[str, float]]] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    explain_images: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.version = check_version_name(str(self.version))
        if self.champion_version is not None:
            self.champion_version = str(self.champion_version)


@dataclass
class DashboardData:
    """Everything the dashboard shows for one registered model.

    Attributes:
        model_name: The registered model name.
        generated_at: When the data was collected, ISO 8601 (the only time shown on pages).
        champion: The version behind alias ``champion``, or None when there is none.
        versions: Every version, newest first.
        audit: The audit trail (promotions, failed candidates, rollbacks), newest first; each
            event is a dict with the keys in :data:`AUDIT_KEYS`.
    """

    model_name: str
    generated_at: str
    champion: str | None = None
    versions: list[VersionRecord] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.champion is not None:
            self.champion = str(self.champion)
        seen = [v.version for v in self.versions]
        if len(seen) != len(set(seen)):
            raise ValueError(f"duplicate versions in dashboard data: {seen}")

    def version(self, version: str | None) -> VersionRecord | None:
        """The record of ``version``, or None when it is not in the data."""
        return next((v for v in self.versions if v.version == version), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DashboardData:
        """Build from the plain dict form, e.g. a JSON file written by :meth:`to_dict`."""
        versions = [VersionRecord(**v) for v in raw.get("versions", [])]
        return cls(
            model_name=raw["model_name"],
            generated_at=raw["generated_at"],
            champion=raw.get("champion"),
            versions=versions,
            audit=[dict(e) for e in raw.get("audit", [])],
        )
