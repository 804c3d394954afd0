"""Publish pipeline outputs and the golden holdout to the DVC remote; pull them in another clone.

The remote is ``Settings.dvc_remote`` (a folder in the state directory by default, an
``s3://`` prefix in production). It is written into the clone's ``.dvc/config.local`` each
time, so every clone pointed at the same state uses the same remote without editing a
tracked file. Publication is two steps: ``dvc push`` of the outputs, then the holdout's
pointer (:mod:`modops.data.holdout`), which is written once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modops.config import Settings
from modops.data.holdout import HoldoutPointer, make_pointer, write_pointer

__all__ = ["REMOTE_NAME", "PublishResult", "configure_remote", "publish", "pull"]

REMOTE_NAME = "modops"
HOLDOUT = Path("data/holdout.parquet")
#: The image store holds the holdout's images; DVC pushes it as one output.
STORE = Path("data/store")


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` did: the remote, what was pushed, and the holdout now published."""

    remote: str
    pushed: tuple[str, ...]
    holdout: HoldoutPointer
    dvc_output: str

    def to_dict(self) -> dict:
        return {"remote": self.remote, "pushed": list(self.pushed), "holdout": self.holdout.__dict__}


def _dvc(args: list[str], *, project: Path) -> str:
    tool = Path(sys.executable).parent / "dvc"
    cmd = [str(tool) if tool.exists() else "dvc", *args]
    env = {**os.environ, "DVC_NO_ANALYTICS": "true"}
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`dvc {' '.join(args)}` failed (exit {done.returncode}):\n{tail}")
    return done.stdout + done.stderr


def configure_remote(settings: Settings, *, project: Path) -> str:
    """Make ``Settings.dvc_remote`` this clone's default DVC remote (in ``.dvc/config.local``)."""
    url = settings.resolved_dvc_remote
    if not url.startswith("s3://"):
        Path(url).mkdir(parents=True, exist_ok=True)
    _dvc(["remote", "add", "--local", "--force", "--default", REMOTE_NAME, url], project=project)
    if settings.s3_endpoint_url and url.startswith("s3://"):
        _dvc(["remote", "modify", "--local", REMOTE_NAME, "endpointurl", settings.s3_endpoint_url], project=project)
    return url


def publish(
    settings: Settings,
    *,
    project: Path,
    everything: bool = True,
    rebaseline_reason: str | None = None,
    who: str = "pipeline",
) -> PublishResult:
    """Push outputs to the remote and publish the holdout's pointer (once).

    Args:
        settings: Where the remote is.
        project: The clone (the folder holding ``dvc.yaml``).
        everything: Push every pipeline output (so another clone can ``dvc pull`` them all);
            False pushes the holdout (its ids and labels, and the image store holding its images).
        rebaseline_reason: Replace an already published, different holdout, for this reason.
        who: Recorded as the publisher.

    Raises:
        FileNotFoundError: The split stage has not frozen a holdout yet.
        HoldoutConflictError: Another holdout is published and no reason to replace it is given.
        RuntimeError: ``dvc`` failed (its last lines are in the message).
    """
    holdout = project / HOLDOUT
    if not holdout.is_file():
        raise FileNotFoundError(f"no holdout at {holdout}: run the split stage first (dvc repro split)")
    url = configure_remote(settings, project=project)
    targets = [] if everything else [str(HOLDOUT), str(STORE)]
    output = _dvc(["push", *targets], project=project)
    pointer = write_pointer(
        url,
        make_pointer(holdout, by=who),
        rebaseline_reason=rebaseline_reason,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return PublishResult(url, tuple(targets) or ("all outputs",), pointer, last)


def pull(settings: Settings, *, project: Path) -> str:
    """Configure the remote and ``dvc pull`` every output; returns DVC's summary line."""
    configure_remote(settings, project=project)
    output = _dvc(["pull"], project=project)
    return output.strip().splitlines()[-1] if output.strip() else ""
