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
        }
    )
    variants = {"a.png": "qr", "b.png": "vertical", "c.png": "vertical", "d.png": "text", "e.png": "product"}
    got = style_recall(scored, variants, category="promo_spam", style=NEW_STYLE, exclude={"C"})
    assert got["n"] == 2 and got["recall"] == 0.5  # a found, b missed; c was labelled in the round
    assert got["flagged"] == 2 and got["precision"] == 0.5  # a right, d (benign text) wrong


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
