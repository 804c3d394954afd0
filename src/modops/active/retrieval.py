"""Small-sample retrieval: find candidates for each category from a few seed images.

Cold start: a category has a handful of confirmed examples (the seeds) and the pool has
thousands to millions of unlabelled images. Each seed embedding queries a faiss index of the
pool; an image's score for a category is its best cosine similarity to any of that category's
seeds. The top of each list goes to reviewers, whose answers feed ``precision_at_k``.

Embeddings come from elsewhere (a backbone); everything here is arrays in, arrays or frames
out. Vectors are L2-normalised on the way in, so inner product equals cosine similarity.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import faiss
import numpy as np
import pandas as pd

__all__ = [
    "CANDIDATE_COLUMNS",
    "build_index",
    "search",
    "retrieve_candidates",
    "precision_at_k",
]

#: Columns of the frame returned by :func:`retrieve_candidates`, in order.
CANDIDATE_COLUMNS = ("category", "image_id", "score", "rank", "best_seed", "n_seeds_hit")

# faiss's k-means asks for at least this many training points per centroid and prints a
# warning below it (``ClusteringParameters.min_points_per_centroid``); the default nlist is
# clamped so that a small pool never trips it.
_MIN_POINTS_PER_LIST = 39


def _as_matrix(x: np.ndarray, *, name: str, dim: int | None = None) -> np.ndarray:
    """Validate a [N, D] float matrix and return it as C-contiguous float32 (faiss requires both)."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D]; got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers; got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]} but the index has {dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation of a float32 [N, D] matrix, returning a new array.

    A zero row stays zero (similarity 0 to everything) instead of becoming NaN, which
    ``faiss.normalize_L2`` would not guarantee.
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _default_nlist(n: int) -> int:
    """About 4 * sqrt(N) inverted lists, but never so many that k-means lacks training points."""
    return max(1, min(round(4 * math.sqrt(n)), n // _MIN_POINTS_PER_LIST))


def build_index(
    embeddings: np.ndarray,
    *,
    kind: str = "flat",
    nlist: int | None = None,
    seed: int = 0,
) -> faiss.Index:
    """Build a cosine-similarity faiss index over a pool of embeddings.

    Args:
        embeddings: Float array [N, D], one row per pool image; row ``i`` gets faiss id ``i``.
            Rows are L2-normalised internally (a zero row stays zero); the input is not modified.
        kind: ``"flat"`` for exact search (``IndexFlatIP``; fine up to ~10^5 rows on 2 cores) or
            ``"ivf"`` for approximate search (``IndexIVFFlat``, inner product), meant for pools
            of a million images.
        nlist: Number of inverted lists for ``"ivf"``; default ``round(4 * sqrt(N))`` clamped to
            ``[1, N // 39]`` so k-means has enough training points. An explicit value must be in
            ``[1, N]``. Ignored for ``"flat"``.
        seed: Seed for k-means training of ``"ivf"`` (same data and seed give the same index).

    Returns:
        A trained faiss index with ``ntotal == N`` and inner-product metric. Query it with
        :func:`search` (which normalises the queries the same way).

    Raises:
        ValueError: On a non-2-D, empty or non-finite input, an unknown ``kind``, or a bad ``nlist``.
    """
    x = _l2_normalise(_as_matrix(embeddings, name="embeddings"))
    n, d = x.shape
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        if nlist is None:
            nlist = _default_nlist(n)
        elif not 1 <= int(nlist) <= n:
            raise ValueError(f"nlist must be between 1 and the number of embeddings ({n}); got {nlist}")
        # index_factory owns its coarse quantizer, so no Python reference has to keep it alive.
        index = faiss.index_factory(d, f"IVF{int(nlist)},Flat", faiss.METRIC_INNER_PRODUCT)
        faiss.extract_index_ivf(index).cp.seed = int(seed)
        index.train(x)
    else:
        raise ValueError(f"unknown index kind {kind!r}; expected 'flat' or 'ivf'")
    index.add(x)
    return index


def search(
    index: faiss.Index,
    queries: np.ndarray,
    *,
    k: int,
    nprobe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of each query.

    Args:
        index: An inner-product index from :func:`build_index` (or any index over L2-normalised
            rows with ``METRIC_INNER_PRODUCT``).
        queries: Float array [Q, D]; L2-normalised internally (a zero query scores 0 everywhere).
        k: Neighbours per query, >= 1; may exceed ``index.ntotal``.
        nprobe: For an IVF index, how many inverted lists to visit (more = slower, closer to
            exact); passed per call, so the index itself is not changed. Default: the index's
            own setting (faiss's default is 1). Ignored by exact indexes.

    Returns:
        ``(similarities, ids)``, both [Q, k], each row best first. ``similarities`` are float32
        cosines clipped to [-1, 1]; ``ids`` are int64 pool row indices. Where fewer than k
        neighbours exist (small pool, or an IVF search that visited few lists) the row is
        padded with id ``-1`` and similarity ``-inf``.

    Raises:
        ValueError: On a bad shape, dimension mismatch, non-IP index, or k / nprobe < 1.
    """
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError("index must use the inner-product metric (build it with build_index)")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    if nprobe is not None and int(nprobe) < 1:
        raise ValueError(f"nprobe must be >= 1; got {nprobe}")
    q = _l2_normalise(_as_matrix(queries, name="queries", dim=index.d))
    params = None
    if nprobe is not None and isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(nprobe=int(nprobe))
    sims, ids = index.search(q, int(k), params=params)
    ids = ids.astype(np.int64, copy=False)
    missing = ids < 0
    # faiss pads with -FLT_MAX; -inf says "no neighbour" without looking like a real score.
    sims = np.where(missing, -np.inf, np.clip(sims, -1.0, 1.0)).astype(np.float32)
    return sims, ids


def _empty_candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "category": pd.Series(dtype=object),
            "image_id": pd.Series(dtype=object),
            "score": pd.Series(dtype=np.float64),
            "rank": pd.Series(dtype=np.int64),
            "best_seed": pd.Series(dtype=np.int64),
            "n_seeds_hit": pd.Series(dtype=np.int64),
        }
    )


def retrieve_candidates(
    pool_ids: Sequence[str],
    pool_embeddings: np.ndarray,
    seeds: Mapping[str, np.ndarray],
    *,
    per_category: int,
    k_per_seed: int | None = None,
    exclude: Collection[str] = (),
    index: faiss.Index | None = None,
    nprobe: int | None = None,
) -> pd.DataFrame:
    """Rank pool images for each category by their best similarity to the category's seeds.

    For category ``c`` with seeds ``S_c``, an image's score is ``max_s cos(image, s)`` over the
    seeds whose top-``k_per_seed`` neighbours include it. With an exact (flat) index and the
    default ``k_per_seed`` the top ``per_category`` equals the exact max-similarity ranking: an
    image missing from a seed's list is beaten, for that seed, by ``per_category`` non-excluded
    images, which therefore all outscore it.

    Args:
        pool_ids: N unique image ids; ``pool_ids[i]`` names row ``i`` of ``pool_embeddings``.
        pool_embeddings: Float array [N, D]. Only used to build a flat index when ``index`` is None.
        seeds: Category -> seed embeddings [S_c, D] (a single seed may be given as [D]). Categories
            are processed, and appear in the output, in mapping order.
        per_category: How many candidates to keep per category, >= 1.
        k_per_seed: Neighbours fetched per seed. Default ``per_category`` + the number of excluded
            ids present in the pool, capped at N, so exclusions cannot starve a category.
        exclude: Image ids to skip (already labelled, or the seeds themselves). Ids not in the pool
            are ignored.
        index: A prebuilt index over ``pool_embeddings`` in the same row order (e.g. an IVF index
            from :func:`build_index` for a large pool); built as flat when None.
        nprobe: Passed to :func:`search` for IVF indexes.

    Returns:
        DataFrame with columns ``CANDIDATE_COLUMNS``, one row per (category, image), at most
        ``per_category`` rows per category, ordered by category (mapping order) then rank:

        - ``category`` (str), ``image_id`` (str);
        - ``score`` (float): best cosine similarity to the category's seeds, in [-1, 1];
        - ``rank`` (int): 1-based within the category, by score descending then image_id ascending;
        - ``best_seed`` (int): row in ``seeds[category]`` of the most similar seed (lowest row on ties);
        - ``n_seeds_hit`` (int): how many of the category's seeds had the image in their top
          ``k_per_seed`` (agreement between seeds; depends on ``k_per_seed``).

        The same image may appear under several categories; a reviewer decides. Output is
        deterministic for a given index; exact score ties at a seed's k-th place are resolved
        by faiss, not by image_id.

    Raises:
        ValueError: On mismatched lengths or dimensions, duplicate pool ids, a category without
            seeds, or a non-positive ``per_category`` / ``k_per_seed``.
    """
    ids = np.asarray([str(i) for i in pool_ids], dtype=object)
    n = len(ids)
    emb = np.asarray(pool_embeddings)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"pool_embeddings must be [N, D] with N = len(pool_ids) = {n}; got shape {emb.shape}")
    if n == 0:
        raise ValueError("the pool is empty")
    if len(set(ids)) != n:
        raise ValueError("pool_ids contains duplicates")
    if int(per_category) < 1:
        raise ValueError(f"per_category must be >= 1; got {per_category}")
    if index is None:
        index = build_index(emb, kind="flat")
    elif index.ntotal != n or index.d != emb.shape[1]:
        raise ValueError(
            f"index holds {index.ntotal} vectors of dimension {index.d}, "
            f"but the pool is {n} x {emb.shape[1]}: build it over pool_embeddings"
        )

    exclude_set = {str(e) for e in exclude}
    excluded = np.fromiter((i in exclude_set for i in ids), dtype=bool, count=n)
    if k_per_seed is None:
        k_per_seed = min(n, int(per_category) + int(excluded.sum()))
    elif int(k_per_seed) < 1:
        raise ValueError(f"k_per_seed must be >= 1; got {k_per_seed}")

    frames: list[pd.DataFrame] = []
    for category, seed_emb in seeds.items():
        s = np.asarray(seed_emb)
        if s.ndim == 1:
            s = s[None, :]
        if s.ndim != 2 or s.shape[0] == 0:
            raise ValueError(f"category {category!r} has no seeds (shape {s.shape}); drop it or add seeds")
        sims, rows = search(index, s, k=int(k_per_seed), nprobe=nprobe)
        seed_idx = np.broadcast_to(np.arange(s.shape[0])[:, None], rows.shape)
        hits = pd.DataFrame({"row": rows.ravel(), "score": sims.ravel().astype(np.float64), "seed": seed_idx.ravel()})
        hits = hits[hits["row"] >= 0]
        hits = hits[~excluded[hits["row"].to_numpy()]]
        if hits.empty:
            continue
        # Best seed first within each image (highest similarity, then lowest seed row) so that
        # groupby().first() picks a deterministic best_seed.
        hits = hits.sort_values(["row", "score", "seed"], ascending=[True, False, True], kind="mergesort")
        grouped = hits.groupby("row", sort=False)
        best = grouped.first()
        best["n_seeds_hit"] = grouped.size()
        per_image = pd.DataFrame(
            {
                "category": str(category),
                "image_id": ids[best.index.to_numpy()],
                "score": best["score"].to_numpy(),
                "best_seed": best["seed"].to_numpy().astype(np.int64),
                "n_seeds_hit": best["n_seeds_hit"].to_numpy().astype(np.int64),
            }
        )
        per_image = per_image.sort_values(["score", "image_id"], ascending=[False, True], kind="mergesort")
        per_image = per_image.head(int(per_category)).reset_index(drop=True)
        per_image["rank"] = np.arange(1, len(per_image) + 1, dtype=np.int64)
        frames.append(per_image)

    if not frames:
        return _empty_candidates()
    out = pd.concat(frames, ignore_index=True)
    return out[list(CANDIDATE_COLUMNS)]


def precision_at_k(
    candidates: pd.DataFrame,
    confirmed: pd.DataFrame,
    *,
    ks: Sequence[int] = (10, 50, 100),
) -> dict[str, dict[str, float | int]]:
    """Per-category precision of the top-k candidates, judged by reviewers' labels.

    Only reviewed candidates count: precision@k = hits / reviewed among the top ``min(k, n)``
    candidates by rank, where ``n`` is the category's list length. Unreviewed candidates are
    neither hits nor misses, so a partly reviewed list gives an estimate over what was seen.

    Args:
        candidates: Frame with at least ``category``, ``image_id`` and ``rank`` (as returned by
            :func:`retrieve_candidates`).
        confirmed: Frame with ``image_id`` and ``label`` (the reviewers' class). Rows with a
            missing label are treated as not reviewed. Repeated ids must agree on the label.
        ks: Cut-offs, each >= 1.

    Returns:
        ``{category: {...}}`` in order of first appearance in ``candidates``. For each k:

        - ``p@k`` (float): hits / reviewed, NaN when nothing in the top k was reviewed;
        - ``n@k`` (int): candidates actually considered, ``min(k, n)`` (less than k when the list is short);
        - ``reviewed@k`` (int): of those, how many have a confirmed label;
        - ``hits@k`` (int): of those, how many were confirmed as this category.

        Plus ``n_candidates`` (int): the category's list length.

    Raises:
        ValueError: On missing columns, a k < 1, or conflicting labels for one image.
    """
    for frame, name, cols in (
        (candidates, "candidates", ("category", "image_id", "rank")),
        (confirmed, "confirmed", ("image_id", "label")),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} is missing columns {missing}")
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1; got {ks}")

    labels = confirmed[["image_id", "label"]].dropna(subset=["label"]).astype({"image_id": str})
    labels = labels.drop_duplicates()
    conflicting = labels["image_id"][labels["image_id"].duplicated()]
    if not conflicting.empty:
        raise ValueError(f"confirmed has conflicting labels for {sorted(set(conflicting))[:5]}; resolve them first")
    label_of = dict(zip(labels["image_id"], labels["label"], strict=True))

    out: dict[str, dict[str, float | int]] = {}
    for category, group in candidates.groupby("category", sort=False):
        ranked = group.sort_values(["rank", "image_id"], kind="mergesort")
        got = [label_of.get(str(i)) for i in ranked["image_id"]]
        reviewed = np.array([g is not None for g in got], dtype=bool)
        hit = np.array([g is not None and g == category for g in got], dtype=bool)
        stats: dict[str, float | int] = {"n_candidates": len(ranked)}
        for k in ks:
            used = min(k, len(ranked))
            n_rev = int(reviewed[:used].sum())
            n_hit = int(hit[:used].sum())
            stats[f"p@{k}"] = n_hit / n_rev if n_rev else math.nan
            stats[f"n@{k}"] = used
            stats[f"reviewed@{k}"] = n_rev
            stats[f"hits@{k}"] = n_hit
        out[str(category)] = stats
    return out
