"""`modops demo-serve`: a registered model served over loopback HTTP, a demo day posted, the queue shown."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from modops.cli import app
from modops.demo.serve_story import truth_table
from tests.conftest import register_champion


def test_truth_table_counts_decisions_per_true_label() -> None:
    decisions = pd.Series(["allowed", "pending_review", "allowed", "discarded"])
    truth = pd.Series(["clean", "promo_spam", "clean", "promo_spam"])
    assert truth_table(decisions, truth) == {
        "clean": {"allowed": 2},
        "promo_spam": {"discarded": 1, "pending_review": 1},
    }


def test_demo_serve_without_a_model_says_to_run_the_demo() -> None:
    result = CliRunner().invoke(app, ["demo-serve", "--exit", "--port", "0", "--n-images", "10"])
    assert result.exit_code == 1 and "make demo" in result.output


def test_demo_serve_posts_a_day_and_shows_the_queue(tmp_path: Path) -> None:
    from modops.config import load_settings

    version = register_champion(tmp_path)
    result = CliRunner().invoke(
        app, ["demo-serve", "--exit", "--port", "0", "--n-images", "24", "--positive-rate", "0.25"]
    )
    assert result.exit_code == 0, result.output
    assert "reviewer page" in result.output and "/review" in result.output
    saved = json.loads((load_settings().state_dir / "demo_serve.json").read_text())
    assert saved["version"] == version and saved["uploads"] == 24 and saved["errors"] == 0
    assert sum(sum(c.values()) for c in saved["by_truth"].values()) == 24
    assert set(saved["by_truth"]) <= {"clean", "promo_spam", "disgusting", "weapon"}
    assert "token" not in saved  # the admin's token is printed once, never stored
    queued = saved["decisions"].get("pending_review", 0)
    assert len(saved["queue_head"]) == min(queued, 8)
