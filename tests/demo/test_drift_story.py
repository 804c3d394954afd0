"""The drift story's figures: recall on the new style, and the params it needs."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from modops.config import load_settings
from modops.demo.drift_story import NEW_STYLE, StoryError, run_drift_story, style_recall
from modops.demo.plan import category_of
from tests.conftest import REPO


def test_variants_map_to_their_labels():
    assert {category_of(v) for v in NEW_STYLE} == {"promo_spam"}
    assert (category_of("knife"), category_of("tool"), category_of("holes")) == ("weapon", "clean", "disgusting")
    assert category_of("no such variant") is None


def test_style_recall_counts_the_styles_images_outside_the_round():
    scored = pd.DataFrame(
        {
            "uri": ["a.png", "b.png", "c.png", "d.png", "e.png"],
            "image_id": ["A", "B", "C", "D", "E"],
            "flag_promo_spam": [True, False, True, True, False],
            "p_promo_spam": [0.9, 0.4, 0.95, 0.8, 0.5],
        }
    )
    variants = {"a.png": "qr", "b.png": "vertical", "c.png": "vertical", "d.png": "text", "e.png": "product"}
    got = style_recall(scored, variants, category="promo_spam", style=NEW_STYLE, exclude={"C"})
    assert got["n"] == 2 and got["recall"] == 0.5  # a found, b missed; c was labelled in the round
    assert got["flagged"] == 2 and got["precision"] == 0.5  # a right, d (benign text) wrong
    # Whatever the threshold: a (0.9) ranks above the clean d (0.8) and e (0.5), b (0.4) below them.
    assert got["median_score"] == pytest.approx(0.65)
    assert got["average_precision"] == pytest.approx((1 + 2 / 4) / 2)


def test_the_story_refuses_params_that_cannot_run_it(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["relabel"]["reviewer"] = "label_studio"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(StoryError, match="demo_oracle"):
        run_drift_story(tmp_path, settings=load_settings(), day="2026-12-01")
    params["relabel"]["reviewer"] = "demo_oracle"
    params["score"]["source"] = "elsewhere/{day}"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(StoryError, match="images folder"):
        run_drift_story(tmp_path, settings=load_settings(), day="2026-12-01")


def test_the_story_prints_the_round_and_the_new_style_figures():
    from rich.console import Console

    from modops.cli import _print_story

    style = {"n": 52, "recall": 0.0, "flagged": 2, "precision": 0.0, "median_score": 0.28, "average_precision": 0.08}
    result = {
        "alerts_received": 1,
        "alert_texts": ["modops: drift on 2026-12-01"],
        "runs": {"drift": True},
        "round": 1,
        "round_labels": {"clean": 150, "promo_spam": 50},
        "round_new_style": 12,
        "admitted": {"written": 200},
        "before": {"version": "1", "new_style": style},
        "after": {"version": "2", "new_style": {**style, "median_score": 0.69, "average_precision": 0.63}},
        "candidate_version": "2",
        "trained_from": "modops-moderation/v1",
        "gate_passed": False,
        "gate_reasons": ["promo_spam precision 0.00 < floor 0.80"],
        "champion_after": None,
        "report": "report.html",
        "workspace": "ws",
        "batch": "batch",
    }
    console = Console(record=True, width=200)
    _print_story(result, console=console)
    text = console.export_text()
    assert "v1 0.00 -> v2 0.00" in text and "12 of them new-style spam" in text
    assert "median promo_spam score 0.28 -> 0.69" in text and "clean images 0.08 -> 0.63" in text
    assert "FAILED: champion unchanged" in text and "promo_spam precision 0.00 < floor 0.80" in text
    assert "v2 trained from modops-moderation/v1" in text
