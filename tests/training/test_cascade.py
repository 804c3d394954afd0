"""The OHEM cascade: hard example mining, stage 2's training set, and the trained cascade's val figures."""

from __future__ import annotations

import numpy as np
import pytest

from modops.config import CascadeConfig, CombineConfig
from modops.models.predictor import build_predictor
from modops.scoring.batch import score_ids
from modops.training import get_trainer
from modops.training.cascade import mine_hard_examples, stage2_training_set

# --- mine_hard_examples -----------------------------------------------------------------------


def test_mine_returns_highest_losses_hardest_first():
    losses = np.array([0.1, 2.0, 0.7, 3.5, 0.2, 1.1])
    assert mine_hard_examples(losses, n=3).tolist() == [3, 1, 5]
    assert mine_hard_examples(losses, n=1).tolist() == [3]


def test_mine_breaks_ties_by_position():
    losses = np.array([1.0, 2.0, 1.0, 2.0, 0.5, 2.0])
    assert mine_hard_examples(losses, n=4).tolist() == [1, 3, 5, 0]
    assert mine_hard_examples(np.zeros(5), n=3).tolist() == [0, 1, 2]


def test_mine_never_returns_nan():
    losses = np.array([np.nan, 0.3, np.nan, 0.9, 0.1, np.nan])
    assert mine_hard_examples(losses, n=2).tolist() == [3, 1]
    assert mine_hard_examples(losses, n=10).tolist() == [3, 1, 4]  # fewer than n readable
    assert mine_hard_examples(np.full(4, np.nan), n=2).tolist() == []


def test_mine_edge_cases():
    assert mine_hard_examples(np.array([0.5, 0.2]), n=0).tolist() == []
    assert mine_hard_examples(np.array([]), n=3).tolist() == []
    out = mine_hard_examples(np.random.default_rng(0).random(50), n=7)
    assert np.issubdtype(out.dtype, np.integer) and len(set(out.tolist())) == 7


def test_mine_matches_a_reference_on_random_losses():
    rng = np.random.default_rng(1)
    losses = rng.integers(0, 6, 200).astype(float)  # many ties
    losses[rng.choice(200, 30, replace=False)] = np.nan
    got = mine_hard_examples(losses, n=40).tolist()
    ref = sorted((i for i in range(200) if np.isfinite(losses[i])), key=lambda i: (-losses[i], i))[:40]
    assert got == ref


# --- stage2_training_set ----------------------------------------------------------------------

Y = np.array([0] * 40 + [1] * 10 + [2] * 5)  # positions 0-39 clean, 40-49 class 1, 50-54 class 2
HARD = np.array([45, 3, 41])


def _per_class_outside(chosen: np.ndarray, hard: np.ndarray, y: np.ndarray, k: int) -> list[int]:
    rest = np.setdiff1d(chosen, hard)
    return np.bincount(y[rest], minlength=k).tolist()


def test_stage2_set_has_all_hard_plus_balanced_per_class():
    chosen = stage2_training_set(Y, HARD, balanced=12, num_classes=3, seed=0)
    assert chosen.dtype == np.int64
    assert chosen.tolist() == sorted(set(chosen.tolist()))  # sorted, unique
    assert set(HARD.tolist()) <= set(chosen.tolist())
    assert _per_class_outside(chosen, HARD, Y, 3) == [4, 4, 4]  # balanced // num_classes each
    assert len(chosen) == len(HARD) + 12


def test_stage2_set_takes_all_of_a_small_class():
    chosen = stage2_training_set(Y, HARD, balanced=30, num_classes=3, seed=0)
    # 10 per class wanted: clean has 39 non-hard, class 1 has 8, class 2 has 5
    assert _per_class_outside(chosen, HARD, Y, 3) == [10, 8, 5]
    assert set(np.flatnonzero(Y != 0).tolist()) <= set(chosen.tolist())


def test_stage2_set_without_balanced_is_the_hard_examples():
    assert stage2_training_set(Y, HARD, balanced=0, num_classes=3, seed=0).tolist() == sorted(HARD.tolist())
    assert stage2_training_set(Y, np.array([], dtype=np.int64), balanced=0, num_classes=3, seed=0).tolist() == []


def test_stage2_set_with_no_hard_examples_is_balanced_only():
    chosen = stage2_training_set(Y, np.array([], dtype=np.int64), balanced=9, num_classes=3, seed=0)
    assert np.bincount(Y[chosen], minlength=3).tolist() == [3, 3, 3]


def test_stage2_set_is_deterministic_by_seed():
    a = stage2_training_set(Y, HARD, balanced=12, num_classes=3, seed=5)
    b = stage2_training_set(Y, HARD, balanced=12, num_classes=3, seed=5)
    assert a.tolist() == b.tolist()
    others = [stage2_training_set(Y, HARD, balanced=12, num_classes=3, seed=s).tolist() for s in range(6, 10)]
    assert any(o != a.tolist() for o in others)


# --- the trained cascade ----------------------------------------------------------------------


def test_val_stage2_share_matches_scoring(trained, tiny):
    run = trained("ohem_cascade")
    share = run.result.info["val_stage2_share"]
    assert 0.0 <= share <= 1.0
    spec = run.result.spec(tiny.classes, trainer="ohem_cascade", label_version=None)
    scores = score_ids(
        build_predictor(run.result.networks, spec),
        run.data.val_ids,
        reader=run.data.reader,
        batch_size=run.cfg.batch_size * 2,
    )
    assert scores.ok.all()
    assert scores.stage2_share == pytest.approx(share, abs=1e-12)


def test_cascade_info_is_consistent(trained, tiny):
    run = trained("ohem_cascade")
    info, cc = run.result.info, run.cfg.ohem_cascade
    assert info["mined_images"] == tiny.n_train  # mine_max_images 0 = all
    assert info["hard_examples"] == min(cc.hard_examples, tiny.n_train)
    assert sum(info["hard_examples_by_class"].values()) == info["hard_examples"]
    assert set(info["hard_examples_by_class"]) == set(tiny.classes)
    assert info["hard_examples"] <= info["stage2_train_images"] <= info["hard_examples"] + cc.balanced_examples
    assert 1 <= info["stage1_best_epoch"] <= run.cfg.epochs
    stage1 = [h["val_macro_pr_auc"] for h in run.result.history if h["phase"] == "stage1"]
    assert info["stage1_val_macro_pr_auc"] == max(stage1)


def test_mining_pool_keeps_every_violation_under_a_cap(tiny):
    cap = 24  # 16 positives + 8 of the 48 negatives
    run = tiny.train(
        "ohem_cascade",
        epochs=1,
        ohem_cascade=CascadeConfig(stage2_epochs=1, mine_max_images=cap, hard_examples=cap, balanced_examples=0),
    )
    info = run.result.info
    assert info["mined_images"] == cap
    assert info["hard_examples"] == cap
    assert info["hard_examples_by_class"]["red"] == tiny.n_train // 4
    assert info["stage2_train_images"] == cap


def test_unknown_combine_rule_is_rejected_before_training(tiny):
    cfg = tiny.make_cfg("ohem_cascade", ohem_cascade=CascadeConfig(combine=CombineConfig(rule="vote")))
    with pytest.raises(ValueError, match="unknown combine rule 'vote'") as exc:
        get_trainer("ohem_cascade")(tiny.make_data(), cfg=cfg, class_names=tiny.classes)
    assert "band" in str(exc.value)


def test_routing_threshold_keeps_the_asked_recall_of_every_category():
    from modops.training.cascade import routing_threshold

    scores = np.array(
        [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.3, 0.1, 0.6], [0.6, 0.1, 0.3], [0.99, 0.005, 0.005]]
    )
    y = np.array([0, 1, 1, 2, 2, 0])
    assert routing_threshold(scores, y, recall=1.0) == 0.3  # the weakest positive of category 2 (0.3) is kept
    assert routing_threshold(scores, y, recall=0.5) == 0.6  # one of two positives per category suffices
    assert routing_threshold(scores, np.array([0, 1, 1, 0, 0, 0]), recall=1.0) == 0.0  # a category without positives
