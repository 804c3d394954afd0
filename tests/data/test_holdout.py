"""The golden holdout: content hash, write-once pointer on the remote, and the split stage taking it."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from modops.config import Settings
from modops.data.holdout import (
    HoldoutConflictError,
    fetch_published,
    holdout_hash,
    make_pointer,
    read_pointer,
    write_pointer,
)
from modops.stages import StageError, _frozen_holdout

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _holdout(path, ids=("a", "b", "c"), labels=("clean", "weapon", "clean")):
    pd.DataFrame({"image_id": list(ids), "label": list(labels)}).to_parquet(path, index=False)
    return path


def _publish_object(remote, path):
    """What `dvc push` does for one file: store it under its md5 (DVC 3's remote layout)."""
    import hashlib

    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    obj = remote / "files" / "md5" / md5[:2] / md5[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(path.read_bytes())


def test_hash_ignores_row_order_but_not_labels():
    a = pd.DataFrame({"image_id": ["x", "y"], "label": ["clean", "weapon"]})
    assert holdout_hash(a) == holdout_hash(a.iloc[::-1]) and holdout_hash(a).startswith("hd-")
    assert holdout_hash(a) != holdout_hash(a.assign(label=["weapon", "weapon"]))
    assert holdout_hash(a) != holdout_hash(a.iloc[:1])


def test_pointer_is_written_once(tmp_path):
    remote = tmp_path / "remote"
    first = make_pointer(_holdout(tmp_path / "h1.parquet"), by="ann", now=NOW)
    assert read_pointer(str(remote)) is None
    assert write_pointer(str(remote), first) == first
    assert write_pointer(str(remote), make_pointer(tmp_path / "h1.parquet", by="bob")).by == "ann"  # same set: no-op
    other = make_pointer(_holdout(tmp_path / "h2.parquet", ids=("a", "b", "d")), by="bob", now=NOW)
    with pytest.raises(HoldoutConflictError, match="--rebaseline"):
        write_pointer(str(remote), other)
    assert read_pointer(str(remote)).hash == first.hash
    replaced = write_pointer(str(remote), other, rebaseline_reason="new category added")
    assert (replaced.replaced, replaced.rebaseline_reason) == (first.hash, "new category added")
    assert read_pointer(str(remote)).hash == other.hash
    assert (remote / "modops" / f"holdout-{first.hash}.json").is_file()  # the old one is kept


def test_fetch_checks_the_object(tmp_path):
    remote = tmp_path / "remote"
    path = _holdout(tmp_path / "h.parquet")
    pointer = write_pointer(str(remote), make_pointer(path, by="ann", now=NOW))
    with pytest.raises(FileNotFoundError, match="modops publish"):
        fetch_published(str(remote), pointer)
    _publish_object(remote, path)
    assert holdout_hash(fetch_published(str(remote), pointer)) == pointer.hash
    obj = next(p for p in (remote / "files").rglob("*") if p.is_file())
    obj.write_bytes(b"damaged")
    with pytest.raises(ValueError, match="damaged"):
        fetch_published(str(remote), pointer)


def test_split_takes_the_published_holdout(tmp_path):
    remote = tmp_path / "remote"
    published = _holdout(tmp_path / "published.parquet")
    write_pointer(str(remote), make_pointer(published, by="ann", now=NOW))
    _publish_object(remote, published)
    settings = Settings(state_dir=tmp_path / "state", dvc_remote=str(remote))
    local = tmp_path / "clone" / "holdout.parquet"  # a second clone: no local holdout yet

    frozen, origin = _frozen_holdout(local, settings=settings, manifest_ids={"a", "b", "c", "z"})
    assert holdout_hash(frozen) == holdout_hash(pd.read_parquet(published)) and origin.startswith("published")

    with pytest.raises(StageError, match="not in this manifest"):
        _frozen_holdout(local, settings=settings, manifest_ids={"a", "b"})
    local.parent.mkdir()
    _holdout(local, ids=("a", "b", "z"))
    with pytest.raises(StageError, match="differs from the one published"):
        _frozen_holdout(local, settings=settings, manifest_ids={"a", "b", "c", "z"})


def test_split_without_a_published_holdout_keeps_the_local_one(tmp_path):
    local = _holdout(tmp_path / "holdout.parquet")
    settings = Settings(state_dir=tmp_path / "state", dvc_remote=str(tmp_path / "empty-remote"))
    frozen, origin = _frozen_holdout(local, settings=settings, manifest_ids={"a", "b", "c"})
    assert len(frozen) == 3 and origin == "local file"
