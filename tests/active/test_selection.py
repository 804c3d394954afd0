from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modops.active.selection import SELECTORS, k_center_greedy, select

CLASSES = ("clean", "spam", "weapon")


def _log(top: list[float], *, emb: np.ndarray | None = None) -> pd.DataFrame:
    """Rows whose spam score is ``top`` (weapon gets a little), embeddings ``emb`` [N, 2]."""
    top = np.asarray(top)
    emb = np.zeros((len(top), 2)) if emb is None else emb
    return pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(len(top))],
            "p_clean": 1 - top - 0.01,
            "p_spam": top,
            "p_weapon": 0.01,
            "emb_00": emb[:, 0],
            "emb_01": emb[:, 1],
        }
    )


def test_the_band_takes_only_unsure_scores_most_central_first():
    frame = _log([0.01, 0.5, 0.95, 0.3, 0.79, 0.2])
    out = select(frame, classes=CLASSES, strategy="confidence_band", budget=10, low=0.2, high=0.8, diversity=False)
    assert out["image_id"].tolist() == ["i1", "i3", "i4", "i5"]
    assert out["rank"].tolist() == [1, 2, 3, 4] and (out["category"] == "spam").all()


def test_entropy_prefers_the_most_uncertain():
    frame = _log([0.01, 0.45, 0.9, 0.3])
    out = select(frame, classes=CLASSES, strategy="entropy", budget=2, diversity=False)
    assert out["image_id"].tolist() == ["i1", "i3"]


def test_random_is_seeded_and_covers_the_budget():
    frame = _log(list(np.linspace(0, 0.9, 50)))
    a = select(frame, classes=CLASSES, strategy="random", budget=10, seed=1)
    assert (
        a["image_id"].tolist()
        == select(frame, classes=CLASSES, strategy="random", budget=10, seed=1)["image_id"].tolist()
    )
    assert len(set(a["image_id"])) == 10


def test_diversity_spreads_a_batch_over_clusters_of_near_duplicates():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]])
    emb = np.repeat(centres, 10, axis=0) + rng.normal(0, 0.01, (40, 2))
    # The cluster at (0, 0) is the most central in the band: without diversity it takes the batch.
    top = np.r_[np.full(10, 0.5), np.full(10, 0.3), np.full(10, 0.25), np.full(10, 0.22)]
    frame = _log(list(top), emb=emb)
    plain = select(frame, classes=CLASSES, strategy="confidence_band", budget=4, diversity=False)
    assert {int(i[1:]) // 10 for i in plain["image_id"]} == {0}
    spread = select(frame, classes=CLASSES, strategy="confidence_band", budget=4, pool_factor=10)
    assert {int(i[1:]) // 10 for i in spread["image_id"]} == {0, 1, 2, 3}


def test_k_center_greedy_picks_far_points():
    pts = np.array([[0.0, 0], [0.1, 0], [5, 0], [5.1, 0], [10, 0]])
    assert sorted(k_center_greedy(pts, 3).tolist()) == [0, 2, 4]
    assert k_center_greedy(pts, 9).tolist() == [0, 1, 2, 3, 4]


def test_bad_strategy_and_band_say_what_is_allowed():
    frame = _log([0.5])
    with pytest.raises(ValueError, match="confidence_band.*entropy.*loss.*random"):
        select(frame, classes=CLASSES, strategy="margin", budget=1)
    with pytest.raises(ValueError, match="low < high"):
        select(frame, classes=CLASSES, strategy="confidence_band", budget=1, low=0.8, high=0.2)
    assert set(SELECTORS) == {"random", "entropy", "confidence_band", "loss"}


def test_duplicates_of_one_image_are_selected_once():
    frame = pd.concat([_log([0.5, 0.4])] * 2, ignore_index=True)
    out = select(frame, classes=CLASSES, strategy="confidence_band", budget=5, diversity=False)
    assert out["image_id"].tolist() == ["i0", "i1"]


def test_the_band_is_ranked_by_predicted_loss_when_the_model_has_a_head():
    frame = _log([0.01, 0.5, 0.95, 0.3, 0.79, 0.2]).assign(predicted_loss=[9.0, 0.1, 8.0, 0.5, 2.0, 0.3])
    out = select(frame, classes=CLASSES, strategy="confidence_band", budget=3, low=0.2, high=0.8, diversity=False)
    # Inside the band only (i0 and i2 have the highest predicted losses but confident scores).
    assert out["image_id"].tolist() == ["i4", "i3", "i5"]


def test_nan_predicted_losses_fall_back_to_the_most_central():
    frame = _log([0.5, 0.3, 0.79]).assign(predicted_loss=np.nan)
    out = select(frame, classes=CLASSES, strategy="confidence_band", budget=3, diversity=False)
    assert out["image_id"].tolist() == ["i0", "i1", "i2"]


def test_loss_strategy_takes_the_highest_predicted_loss_anywhere():
    frame = _log([0.01, 0.5, 0.95]).assign(predicted_loss=[3.0, 1.0, 2.0])
    out = select(frame, classes=CLASSES, strategy="loss", budget=2, diversity=False)
    assert out["image_id"].tolist() == ["i0", "i2"]


def test_loss_strategy_without_a_head_says_how_to_fix_it():
    with pytest.raises(ValueError, match="loss_prediction.enabled"):
        select(_log([0.5, 0.4]), classes=CLASSES, strategy="loss", budget=1)


def test_the_novelty_share_takes_what_the_reference_never_showed_first():
    rng = np.random.default_rng(0)
    classes = ("clean", "spam")
    ref = pd.DataFrame(rng.normal(0, 1, size=(300, 4)), columns=[f"emb_{i:02d}" for i in range(4)])
    day = pd.DataFrame(rng.normal(0, 1, size=(200, 4)), columns=ref.columns)
    away = rng.normal(0, 1, size=(10, 4))
    day.loc[:9, ref.columns] += 12 * away / np.linalg.norm(away, axis=1, keepdims=True)  # ten kinds never seen
    day["image_id"] = [f"i{n:03d}" for n in range(200)]
    day["p_clean"] = rng.uniform(0.3, 0.7, 200)
    day["p_spam"] = 1 - day["p_clean"]
    picked = select(day, classes=classes, strategy="confidence_band", budget=20, reference=ref, novelty_fraction=0.5)
    assert len(picked) == 20 and picked["image_id"].is_unique
    novel = picked[picked["reason"] == "novelty"]
    assert len(novel) == 10 and set(novel["image_id"]) == {f"i{n:03d}" for n in range(10)}
    assert (picked["reason"] == "confidence_band").sum() == 10
    # Without a reference the whole budget goes to the strategy.
    plain = select(day, classes=classes, strategy="confidence_band", budget=20, novelty_fraction=0.5)
    assert set(plain["reason"]) == {"confidence_band"} and len(plain) == 20
    with pytest.raises(ValueError, match="novelty_fraction"):
        select(day, classes=classes, strategy="random", budget=5, reference=ref, novelty_fraction=1.5)
