"""Small-sample retrieval on synthetic clustered embeddings (seeded numpy, no model)."""

from __future__ import annotations

import math

import faiss
import numpy as np
import pandas as pd
import pytest

from modops.active.retrieval import (
    CANDIDATE_COLUMNS,
    build_index,
    precision_at_k,
    retrieve_candidates,
    search,
)

DIM = 16
PER_CLUSTER = 50
CATEGORIES = ("nudity", "violence", "promo_spam", "weapons")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def clustered() -> dict[str, object]:
    """Four well-separated clusters of 50 images each, plus 3 seeds per cluster near its centre."""
    rng = np.random.default_rng(7)
    centres = _unit(rng.standard_normal((len(CATEGORIES), DIM)))
    emb = np.concatenate([c + 0.15 * rng.standard_normal((PER_CLUSTER, DIM)) for c in centres]).astype(np.float32)
    ids = [f"img{i:04d}" for i in range(len(emb))]
    cluster = np.repeat(np.arange(len(CATEGORIES)), PER_CLUSTER)
    seeds = {
        cat: (centres[c] + 0.05 * rng.standard_normal((3, DIM))).astype(np.float32) for c, cat in enumerate(CATEGORIES)
    }
    return {"emb": emb, "ids": ids, "cluster": cluster, "seeds": seeds}


def _brute_force_scores(emb: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Max cosine similarity of each pool row to any seed, [N]."""
    return (_unit(emb.astype(np.float64)) @ _unit(seeds.astype(np.float64)).T).max(axis=1)


# ---------------------------------------------------------------- build_index / search


def test_flat_index_is_cosine_and_zero_vector_is_safe() -> None:
    emb = np.array([[3.0, 0.0], [0.0, 2.0], [0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    index = build_index(emb)
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == 4
    sims, ids = search(index, np.array([[10.0, 0.0]]), k=4)
    assert ids[0].tolist() == [0, 3, 1, 2] or ids[0].tolist() == [0, 3, 2, 1]
    assert sims[0, 0] == pytest.approx(1.0)
    assert sims[0, 1] == pytest.approx(math.sqrt(0.5), abs=1e-6)
    assert np.isfinite(sims).all()
    # A zero query scores 0 everywhere rather than NaN.
    zero_sims, _ = search(index, np.zeros((1, 2)), k=2)
    assert np.allclose(zero_sims, 0.0)
    assert emb[0, 0] == 3.0  # the caller's array is not normalised in place


def test_search_pads_when_k_exceeds_pool() -> None:
    emb = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    sims, ids = search(build_index(emb), emb[:2], k=8)
    assert sims.shape == ids.shape == (2, 8)
    assert (ids[:, 5:] == -1).all() and np.isneginf(sims[:, 5:]).all()
    assert sorted(ids[0, :5].tolist()) == [0, 1, 2, 3, 4]
    assert ids[0, 0] == 0 and ids[1, 0] == 1  # each row is its own nearest neighbour
    assert (np.diff(sims[:, :5], axis=1) <= 1e-6).all() and (sims[:, :5] <= 1.0).all()


@pytest.mark.parametrize(
    ("embeddings", "kwargs", "match"),
    [
        (np.zeros(4, dtype=np.float32), {}, "2-D"),
        (np.zeros((0, 4), dtype=np.float32), {}, "empty"),
        (np.array([[1.0, np.nan]]), {}, "NaN"),
        (np.ones((10, 4)), {"kind": "hnsw"}, "unknown index kind"),
        (np.ones((10, 4)), {"kind": "ivf", "nlist": 11}, "nlist"),
    ],
)
def test_build_index_rejects_bad_input(embeddings: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_index(embeddings, **kwargs)


def test_search_rejects_bad_queries() -> None:
    index = build_index(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="dimension 3"):
        search(index, np.ones((1, 3)), k=1)
    with pytest.raises(ValueError, match="k must be"):
        search(index, np.ones((1, 4)), k=0)
    l2 = faiss.IndexFlatL2(4)
    l2.add(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="inner-product"):
        search(l2, np.ones((1, 4)), k=1)


def test_ivf_matches_flat_on_easy_problem_and_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    centres = _unit(rng.standard_normal((8, DIM)))
    emb = np.concatenate([c + 0.1 * rng.standard_normal((250, DIM)) for c in centres]).astype(np.float32)
    queries = (centres + 0.05 * rng.standard_normal(centres.shape)).astype(np.float32)

    ivf = build_index(emb, kind="ivf", seed=1)
    assert isinstance(ivf, faiss.IndexIVFFlat)
    nlist = faiss.extract_index_ivf(ivf).nlist
    assert nlist == len(emb) // 39  # 4 * sqrt(2000) = 179 clamped to 51 for enough training points
    _, flat_ids = search(build_index(emb), queries, k=10)
    _, ivf_ids = search(ivf, queries, k=10, nprobe=8)
    assert (ivf_ids == flat_ids).all()
    # Visiting every list is exact search.
    _, all_ids = search(ivf, queries, k=100, nprobe=nlist)
    _, flat_100 = search(build_index(emb), queries, k=100)
    assert (all_ids == flat_100).all()
    # nprobe is per call: the index keeps its own setting.
    assert faiss.extract_index_ivf(ivf).nprobe == 1

    again = build_index(emb, kind="ivf", seed=1)
    assert (search(again, queries, k=10, nprobe=2)[1] == search(ivf, queries, k=10, nprobe=2)[1]).all()


# ---------------------------------------------------------------- retrieve_candidates


def test_seeds_retrieve_their_own_cluster_first(clustered: dict) -> None:
    emb, ids, cluster, seeds = clustered["emb"], clustered["ids"], clustered["cluster"], clustered["seeds"]
    out = retrieve_candidates(ids, emb, seeds, per_category=PER_CLUSTER)
    assert tuple(out.columns) == CANDIDATE_COLUMNS
    assert list(dict.fromkeys(out["category"])) == list(CATEGORIES)
    cluster_of = dict(zip(ids, cluster, strict=True))
    for c, cat in enumerate(CATEGORIES):
        got = out[out["category"] == cat]
        assert got["rank"].tolist() == list(range(1, PER_CLUSTER + 1))
        assert {cluster_of[i] for i in got["image_id"]} == {c}
        # The ranking is the true max-similarity ranking (brute force in float64).
        truth = _brute_force_scores(emb, seeds[cat])
        expected = [ids[i] for i in np.argsort(-truth, kind="stable")[:PER_CLUSTER]]
        assert got["image_id"].tolist() == expected
        assert np.allclose(got["score"], np.sort(truth)[::-1][:PER_CLUSTER], atol=1e-5)
        assert got["score"].between(-1, 1).all()
        assert got["best_seed"].between(0, 2).all() and got["n_seeds_hit"].between(1, 3).all()


def test_exclusions_are_honoured_without_starving(clustered: dict) -> None:
    emb, ids, cluster, seeds = clustered["emb"], clustered["ids"], clustered["cluster"], clustered["seeds"]
    cat = CATEGORIES[0]
    full = retrieve_candidates(ids, emb, {cat: seeds[cat]}, per_category=PER_CLUSTER)
    labelled = set(full["image_id"].head(20))  # the 20 best are already labelled
    out = retrieve_candidates(ids, emb, {cat: seeds[cat]}, per_category=30, exclude=labelled | {"not-in-pool"})
    assert len(out) == 30
    assert not labelled & set(out["image_id"])
    # Still the next 30 of the same cluster, in the same order.
    assert out["image_id"].tolist() == full["image_id"].iloc[20:50].tolist()
    assert out["rank"].tolist() == list(range(1, 31))
    assert {cluster[ids.index(i)] for i in out["image_id"]} == {0}


def test_per_category_cut_and_small_pool(clustered: dict) -> None:
    emb, ids, seeds = clustered["emb"], clustered["ids"], clustered["seeds"]
    out = retrieve_candidates(ids, emb, seeds, per_category=5)
    assert out.groupby("category").size().tolist() == [5] * len(CATEGORIES)
    assert out.dtypes["rank"] == np.int64 and out.dtypes["best_seed"] == np.int64
    assert out.dtypes["n_seeds_hit"] == np.int64 and out.dtypes["score"] == np.float64
    # per_category above N returns the whole pool, ranked.
    small = retrieve_candidates(ids[:7], emb[:7], {"x": seeds[CATEGORIES[0]]}, per_category=100)
    assert sorted(small["image_id"]) == sorted(ids[:7]) and small["rank"].tolist() == list(range(1, 8))


def test_ties_are_broken_by_image_id_whatever_the_pool_order() -> None:
    vec = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    other = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    emb = np.stack([vec, other, 2 * vec, vec])  # three exact ties at cosine 1
    ids = ["c", "z", "a", "b"]
    out = retrieve_candidates(ids, emb, {"cat": vec[None, :]}, per_category=4)
    assert out["image_id"].tolist() == ["a", "b", "c", "z"]
    perm = [3, 1, 0, 2]
    again = retrieve_candidates([ids[i] for i in perm], emb[perm], {"cat": vec[None, :]}, per_category=4)
    pd.testing.assert_frame_equal(out, again)


def test_best_seed_and_seed_agreement() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    seeds = {"cat": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)}
    out = retrieve_candidates(["x", "y", "xy", "neg"], emb, seeds, per_category=3, k_per_seed=2)
    rows = out.set_index("image_id")
    assert out["image_id"].tolist() == ["x", "y", "xy"]  # x and y tie at 1.0: by id
    assert rows.loc["x", "best_seed"] == 0 and rows.loc["y", "best_seed"] == 1
    # "xy" is equally close to both seeds (lowest seed row wins) and both retrieved it.
    assert rows.loc["xy", "best_seed"] == 0 and rows.loc["xy", "n_seeds_hit"] == 2
    assert rows.loc["xy", "score"] == pytest.approx(math.sqrt(0.5), abs=1e-6)
    # A single seed may be given as a 1-D vector.
    one = retrieve_candidates(["x", "y", "xy", "neg"], emb, {"cat": np.array([1.0, 0.0])}, per_category=1)
    assert one["image_id"].tolist() == ["x"]


def test_prebuilt_ivf_index_is_used(clustered: dict) -> None:
    emb, ids, seeds = clustered["emb"], clustered["ids"], clustered["seeds"]
    index = build_index(emb, kind="ivf", nlist=4, seed=0)
    flat = retrieve_candidates(ids, emb, seeds, per_category=10)
    ivf = retrieve_candidates(ids, emb, seeds, per_category=10, index=index, nprobe=4)
    pd.testing.assert_frame_equal(flat, ivf)
    with pytest.raises(ValueError, match="build it over pool_embeddings"):
        retrieve_candidates(ids[:10], emb[:10], seeds, per_category=3, index=index)


def test_retrieve_candidates_rejects_bad_input(clustered: dict) -> None:
    emb, ids, seeds = clustered["emb"], clustered["ids"], clustered["seeds"]
    with pytest.raises(ValueError, match="len\\(pool_ids\\)"):
        retrieve_candidates(ids[:-1], emb, seeds, per_category=3)
    with pytest.raises(ValueError, match="duplicates"):
        retrieve_candidates(["a"] * len(ids), emb, seeds, per_category=3)
    with pytest.raises(ValueError, match="no seeds"):
        retrieve_candidates(ids, emb, {"empty": np.zeros((0, DIM))}, per_category=3)
    with pytest.raises(ValueError, match="per_category"):
        retrieve_candidates(ids, emb, seeds, per_category=0)
    with pytest.raises(ValueError, match="dimension"):
        retrieve_candidates(ids, emb, {"x": np.ones((1, DIM + 1))}, per_category=3)


def test_everything_excluded_gives_empty_frame(clustered: dict) -> None:
    emb, ids, seeds = clustered["emb"], clustered["ids"], clustered["seeds"]
    out = retrieve_candidates(ids[:5], emb[:5], seeds, per_category=3, exclude=ids[:5])
    assert out.empty and tuple(out.columns) == CANDIDATE_COLUMNS


# ---------------------------------------------------------------- precision_at_k


def test_precision_at_k_handmade() -> None:
    candidates = pd.DataFrame(
        {
            "category": ["spam"] * 4 + ["nudity"] * 2,
            "image_id": ["a", "b", "c", "d", "a", "e"],
            "rank": [1, 2, 3, 4, 1, 2],
        }
    )
    confirmed = pd.DataFrame(
        {
            "image_id": ["a", "b", "d", "e", "e"],  # c unreviewed; e repeated with the same label
            "label": ["spam", "negative", "spam", "nudity", "nudity"],
        }
    )
    got = precision_at_k(candidates, confirmed, ks=(2, 3, 10))
    assert list(got) == ["spam", "nudity"]
    spam = got["spam"]
    assert spam["n_candidates"] == 4
    assert (spam["p@2"], spam["n@2"], spam["reviewed@2"], spam["hits@2"]) == (0.5, 2, 2, 1)
    assert (spam["p@3"], spam["n@3"], spam["reviewed@3"], spam["hits@3"]) == (0.5, 3, 2, 1)  # c not reviewed
    assert spam["p@10"] == pytest.approx(2 / 3) and spam["n@10"] == 4 and spam["reviewed@10"] == 3
    nudity = got["nudity"]  # "a" was confirmed as spam, so it is a miss for nudity
    assert (nudity["p@2"], nudity["n@2"], nudity["hits@2"]) == (0.5, 2, 1)
    assert nudity["n@10"] == 2


def test_precision_at_k_nothing_reviewed_and_errors() -> None:
    candidates = pd.DataFrame({"category": ["x"], "image_id": ["a"], "rank": [1]})
    got = precision_at_k(candidates, pd.DataFrame({"image_id": ["a"], "label": [None]}), ks=(1,))
    assert math.isnan(got["x"]["p@1"]) and got["x"]["reviewed@1"] == 0
    with pytest.raises(ValueError, match="conflicting"):
        precision_at_k(candidates, pd.DataFrame({"image_id": ["a", "a"], "label": ["x", "y"]}))
    with pytest.raises(ValueError, match="missing columns"):
        precision_at_k(candidates, pd.DataFrame({"image_id": ["a"]}))
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(candidates, pd.DataFrame({"image_id": ["a"], "label": ["x"]}), ks=(0,))
