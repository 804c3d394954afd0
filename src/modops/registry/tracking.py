"""MLflow tracking setup, done explicitly by callers (never at import)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from modops.config import OFFLINE_ENV, Settings

__all__ = ["configure_mlflow", "file_hash", "git_revision", "quiet_env"]


def quiet_env() -> dict[str, str]:
    """Environment that keeps MLflow, DVC and Great Expectations offline and quiet."""
    return dict(OFFLINE_ENV)


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at ``settings`` and make sure the experiment exists.

    The experiment is created with ``settings.resolved_artifact_root`` as its artifact
    location, so artifacts land in the state folder (or S3), not in ``./mlruns``.

    Returns:
        The experiment id.
    """
    for key, value in quiet_env().items():
        os.environ.setdefault(key, value)
    import mlflow

    if settings.tracking_uri is None:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.experiment)
    exp_id = (
        exp.experiment_id
        if exp
        else mlflow.create_experiment(settings.experiment, artifact_location=settings.resolved_artifact_root)
    )
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def file_hash(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file. md5 is the hash DVC 3 records for a file, so it names the data version."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def git_revision(cwd: str | Path = ".") -> str:
    """The current git commit (with ``-dirty`` when tracked files changed), or ``unknown``."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev
