"""The per-image plan: exact label counts, label noise, uploaders and the labelled subset."""

from __future__ import annotations

from collections import Counter

import pytest

from modops.demo import CATEGORIES, NEGATIVE
from modops.demo.plan import CONFUSED_WITH, plan_pool


@pytest.mark.parametrize(
    ("n", "rate", "expected"),
    [
        (3_000, 0.001, (1, 1, 1)),
        (1_500, 0.01, (5, 5, 5)),
        (20_000, 0.01, (67, 67, 66)),
        (100, 0.02, (1, 1, 0)),  # below 3 violations a category may be empty
        (50, 0.0, (0, 0, 0)),
    ],
)
def test_positive_rate_gives_exact_counts(n: int, rate: float, expected: tuple[int, ...]) -> None:
    plan = plan_pool(n, seed=0, day=0, positive_rate=rate, noise_rate=0.0, drift=False)
    counts = Counter(s.label for s in plan.specs)
    assert tuple(counts[c] for c in CATEGORIES) == expected
    assert counts[NEGATIVE] == n - sum(expected)


def test_heavy_noise_keeps_every_category_learnable() -> None:
    plan = plan_pool(2_000, seed=5, day=0, positive_rate=0.01, noise_rate=0.05, drift=False)
    true = [s.label for s in plan.specs]
    assert sum(o != t for o, t in zip(plan.observed, true, strict=True)) == 100
    for cat in CATEGORIES:
        n_true = true.count(cat)
        kept = sum(o == t == cat for o, t in zip(plan.observed, true, strict=True))
        assert kept >= n_true / 2
    # False positives prefer the matching hard negative (benign text -> promo_spam, ...).
    fp = [(s.variant, o) for s, o in zip(plan.specs, plan.observed, strict=True) if s.label == "clean" and o != "clean"]
    assert fp and all(CONFUSED_WITH.get(v, o) == o for v, o in fp)


def test_spam_comes_mostly_from_a_few_uploaders() -> None:
    plan = plan_pool(6_000, seed=0, day=0, positive_rate=0.05, noise_rate=0.0, drift=False)
    by_label: dict[str, Counter[str]] = {"promo_spam": Counter(), "clean": Counter()}
    for spec, uploader in zip(plan.specs, plan.uploaders, strict=True):
        if spec.label in by_label:
            by_label[spec.label][uploader] += 1

    def top3_share(c: Counter[str]) -> float:
        return sum(k for _, k in c.most_common(3)) / sum(c.values())

    assert top3_share(by_label["promo_spam"]) > 0.7
    assert top3_share(by_label["clean"]) < 0.2


@pytest.mark.parametrize(
    ("n", "fraction", "expected"), [(1_000, 0.3, 300), (999, 0.25, 250), (7, 0.5, 4), (40, 1.0, 40)]
)
def test_labelled_fraction_keeps_exactly_the_rounded_count(n: int, fraction: float, expected: int) -> None:
    plan = plan_pool(n, seed=1, day=0, positive_rate=0.1, noise_rate=0.0, drift=False, labelled_fraction=fraction)
    assert sum(plan.labelled) == expected  # round half up, like every other count here


def test_labelled_subset_is_uniform_nested_and_leaves_the_rest_of_the_plan_alone() -> None:
    kwargs = dict(seed=2, day=1, positive_rate=0.2, noise_rate=0.05, drift=False)
    full = plan_pool(2_000, **kwargs)
    small = plan_pool(2_000, labelled_fraction=0.2, **kwargs)
    large = plan_pool(2_000, labelled_fraction=0.6, **kwargs)
    assert all(full.labelled)
    assert small == plan_pool(2_000, labelled_fraction=0.2, **kwargs)  # deterministic
    for p in (small, large):  # only the mask differs
        assert (p.specs, p.observed, p.uploaders, p.business, p.uploaded_at) == (
            full.specs,
            full.observed,
            full.uploaders,
            full.business,
            full.uploaded_at,
        )
    assert all(b for a, b in zip(small.labelled, large.labelled, strict=True) if a)  # a larger fraction adds rows
    # Not stratified, but uniform: violations are labelled at about the overall rate.
    violations = [lab for s, lab in zip(small.specs, small.labelled, strict=True) if s.label != NEGATIVE]
    assert 0.1 < sum(violations) / len(violations) < 0.3
    other_day = plan_pool(2_000, labelled_fraction=0.2, **{**kwargs, "day": 2})
    assert other_day.labelled != small.labelled
