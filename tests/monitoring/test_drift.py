"""Drift checks on synthetic prediction logs: quiet days stay quiet, each kind of drift fires."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modops.config import DriftConfig, load_monitoring_file
from modops.monitoring.drift import flag_rate_checks, judge_day
from modops.scoring.daily import QUARANTINE_COLUMNS, ScoredDay
from tests.conftest import REPO

CATS = ("promo_spam", "weapon")
NO_QUARANTINE = pd.DataFrame(columns=list(QUARANTINE_COLUMNS))


def log(
    n: int, seed: int, *, shift: float = 0.0, width: int = 300, flag: float = 0.02, dark: float = 0.0
) -> pd.DataFrame:
    """A prediction log of ``n`` rows like ``score_uploads`` writes."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 30, (n, 2))
    d = {"uri": [f"u{i}" for i in range(n)], "p_clean": 1 - p.sum(1), "p_promo_spam": p[:, 0], "p_weapon": p[:, 1]}
    d["flag_promo_spam"], d["flag_weapon"] = rng.random(n) < flag, rng.random(n) < flag
    d["flagged"] = d["flag_promo_spam"] | d["flag_weapon"]
    for k in range(8):
        d[f"emb_{k:02d}"] = rng.normal(shift if k < 3 else 0.0, 1.0, n)
    d["width"], d["height"] = rng.integers(width - 50, width + 50, n), rng.integers(250, 350, n)
    d["aspect_ratio"] = d["width"] / d["height"]
    d["brightness"] = rng.uniform(0.3, 0.7, n) - dark
    d["file_bytes"] = rng.integers(10_000, 20_000, n)
    d["format"] = rng.choice(["JPEG", "PNG"], n, p=[0.8, 0.2])
    return pd.DataFrame(d)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return log(4000, 0)


@pytest.fixture(scope="module")
def cfg() -> DriftConfig:
    return load_monitoring_file(REPO / "monitoring" / "drift.yaml", DriftConfig)


def _judge(reference, current, cfg, quarantine=NO_QUARANTINE):  # noqa: ANN001, ANN202
    return judge_day(
        reference, ScoredDay(current, quarantine), cfg=cfg, categories=CATS, day_label="2026-12-01", model_version="1"
    )


@pytest.fixture(scope="module")
def shifted(reference, cfg):  # noqa: ANN001, ANN201 - Evidently's t-SNE costs seconds: judge once
    return _judge(reference, log(1000, 4, shift=0.5), cfg)


def test_a_day_like_the_reference_raises_nothing(reference, cfg):
    # The false-alarm rate over many quiet days is measured in benchmarks/drift_noise.py.
    snapshot, verdict = _judge(reference, log(1000, 1), cfg)
    assert not verdict.drift, verdict.fired
    names = {c.name for c in verdict.checks}
    assert {"embedding", "score:promo_spam", "flag_rate:any", "property:width", "property:format"} <= names
    assert {"quality:rows", "quality:quarantine_rate", "quality:missing"} <= names
    assert snapshot is not None


def test_shifted_embeddings_fire_the_embedding_check(shifted):
    _, verdict = shifted
    assert [c.name for c in verdict.fired] == ["embedding"]
    check = verdict.fired[0]
    assert check.value > check.threshold == 0.55


def test_a_day_that_differs_only_in_image_properties_drifts(reference, cfg):
    _, verdict = _judge(reference, log(1000, 5, width=500, dark=0.2), cfg)
    fired = {c.name for c in verdict.fired}
    assert {"property:width", "property:aspect_ratio", "property:brightness"} <= fired
    assert not fired & {"embedding", "score:promo_spam", "score:weapon", "flag_rate:any"}


def test_a_doubled_flag_rate_fires_per_category_and_overall(reference, cfg):
    checks = flag_rate_checks(reference, log(1000, 6, flag=0.08), cfg=cfg, categories=CATS)
    assert [c.name for c in checks if c.fired] == ["flag_rate:promo_spam", "flag_rate:weapon", "flag_rate:any"]
    check = next(c for c in checks if c.name == "flag_rate:weapon")
    assert "z-test" in check.detail and check.value > 2 * check.threshold


def test_a_small_wobble_of_a_rare_flag_does_not_fire(reference, cfg):
    checks = flag_rate_checks(reference, log(1000, 7, flag=0.03), cfg=cfg, categories=CATS)
    assert len(checks) == 3 and not [c for c in checks if c.fired]
    # A category that stops flagging altogether on a big day does fire.
    gone = flag_rate_checks(reference, log(4000, 8, flag=0.0), cfg=cfg, categories=CATS)
    assert [c.name for c in gone if c.fired] == ["flag_rate:promo_spam", "flag_rate:weapon", "flag_rate:any"]


def test_quarantined_uploads_and_a_thin_day_fire_quality_checks(reference, cfg):
    quarantine = pd.DataFrame(
        [(f"bad{i}.jpg", "", "truncated", "", 10) for i in range(10)], columns=list(QUARANTINE_COLUMNS)
    )
    _, verdict = _judge(reference, log(20, 8), cfg, quarantine)
    fired = {c.name for c in verdict.fired}
    assert {"quality:rows", "quality:quarantine_rate"} <= fired
    rate = next(c for c in verdict.checks if c.name == "quality:quarantine_rate")
    assert rate.value == pytest.approx(10 / 30) and "truncated" in rate.detail


def test_an_empty_day_is_a_quality_alert_without_a_report(reference, cfg):
    snapshot, verdict = _judge(reference, log(0, 9), cfg)
    assert snapshot is None and verdict.drift
    assert [c.name for c in verdict.fired] == ["quality:rows"]


def test_the_verdict_json_has_a_top_level_drift_boolean(shifted):
    _, verdict = shifted
    d = verdict.to_dict()
    assert d["drift"] is True and d["fired"] == ["embedding"]
    assert {"name", "kind", "fired", "value", "threshold", "detail"} == set(d["checks"][0])


def test_unknown_threshold_keys_fail_with_a_suggestion(tmp_path):
    from modops.config import ConfigError

    bad = tmp_path / "drift.yaml"
    bad.write_text("embeding:\n  threshold: 0.6\n")
    with pytest.raises(ConfigError, match="embedding"):
        load_monitoring_file(bad, DriftConfig)
