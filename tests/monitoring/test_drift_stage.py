"""`modops score` then `modops drift`: a quiet day, a day that differs only in image properties."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from modops.cli import app
from modops.config import load_settings
from modops.data.store import ImageStore
from tests.conftest import REPO, register_champion

DAY, ODD_DAY = "2026-12-01", "2026-12-02"


def photo(seed: int, *, scale: float = 1.0, quality: int = 90, dim: float = 1.0) -> bytes:
    """A smooth random 'photo' (blurred noise), 40-64 px a side; ``scale``, ``quality`` and ``dim`` re-encode it."""
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(40, 65)), int(rng.integers(40, 65))
    small = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    if scale != 1.0:
        img = img.resize((int(w * scale), int(h * scale)), Image.Resampling.BICUBIC)
    if dim != 1.0:
        img = Image.fromarray((np.asarray(img, dtype=np.float32) * dim).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A champion, a holdout of 400 stored photos, and two days of 300 uploads each."""
    monkeypatch.setenv("MODOPS_MODEL_NAME", "drift-test")
    version = register_champion(tmp_path)
    store = ImageStore(tmp_path / "store")
    ids = [store.put(photo(i))[0] for i in range(400)]
    splits = pd.DataFrame({"image_id": ids, "label": "clean", "split": "holdout"})
    splits.to_parquet(tmp_path / "splits.parquet", index=False)
    for day, kw in [(DAY, {}), (ODD_DAY, {"scale": 3.0, "quality": 40, "dim": 0.6})]:
        folder = tmp_path / "uploads" / day
        folder.mkdir(parents=True)
        for i in range(1000, 1300):  # other photos than the holdout's, drawn alike
            (folder / f"{i}.jpg").write_bytes(photo(i, **kw))
    return {"tmp": tmp_path, "version": version}


def _run(*args: str):  # noqa: ANN202
    result = CliRunner().invoke(app, [*args, "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 0, result.output
    return result


def _drift(world: dict, day: str) -> dict:
    tmp = world["tmp"]
    _run("score", str(tmp / "uploads" / day), "--day", day, "--log-dir", str(tmp / "log"))
    result = _run(
        "drift", "--day", day, "--json", "--log-dir", str(tmp / "log"), "--splits", str(tmp / "splits.parquet"),
        "--store", str(tmp / "store"), "--thresholds", str(REPO / "monitoring" / "drift.yaml"),
        "--workspace-config", str(REPO / "monitoring" / "workspace.yaml"),
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def _runs(workspace: Path) -> list[str]:
    from evidently.ui.workspace import Workspace

    ws = Workspace(str(workspace))
    (project,) = ws.search_project("modops drift")
    return sorted(ws.get_run(project.id, r).name for r in ws.list_runs(project.id))


def test_a_quiet_day_and_a_day_of_resized_recompressed_darker_uploads(world):
    quiet = _drift(world, DAY)
    assert quiet["drift"] is False, [c for c in quiet["checks"] if c["fired"]]
    assert quiet["rows"] == 300 and quiet["reference_rows"] == 400
    assert Path(quiet["report"]).is_file() and Path(quiet["verdict"]).is_file()
    odd = _drift(world, ODD_DAY)
    assert odd["drift"] is True
    fired = set(odd["fired"])
    assert {"property:width", "property:height", "property:brightness"} <= fired, fired
    # Re-judging a day replaces its workspace run: one run per day and version.
    again = _drift(world, DAY)
    assert again["drift"] is False
    version = world["version"]
    assert _runs(Path(quiet["workspace"])) == [f"{DAY} v{version}", f"{ODD_DAY} v{version}"]
    # The reference was scored once for the version and reused.
    reference = load_settings().prediction_log_dir  # default location is unused: --log-dir given
    assert not reference.exists()
    assert (world["tmp"] / "log" / "reference" / f"model_version={version}" / "predictions.parquet").is_file()


def test_drift_of_a_day_never_scored_says_how_to_score_it(world):
    tmp = world["tmp"]
    result = CliRunner().invoke(
        app,
        ["drift", "--day", "2026-11-30", "--log-dir", str(tmp / "log"), "--splits", str(tmp / "splits.parquet"),
         "--store", str(tmp / "store"), "--params", str(REPO / "params.yaml"),
         "--thresholds", str(REPO / "monitoring" / "drift.yaml"),
         "--workspace-config", str(REPO / "monitoring" / "workspace.yaml")],
    )  # fmt: skip
    assert result.exit_code == 1 and "modops score SOURCE --day 2026-11-30" in result.output
