"""Ingestion: every file ends up in the manifest or in quarantine with a reason."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest
from PIL import Image

from modops.config import ConfigError, IngestConfig, load_section
from modops.data.images import QUARANTINE_REASONS, DecodeLimits
from modops.data.ingest import ingest, read_decode_limits
from modops.data.manifest import MANIFEST_COLUMNS
from modops.data.store import ImageStore
from tests.conftest import image_bytes

CFG = IngestConfig(max_pixels=4_000_000, workers=1)


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(buf, format="PNG")  # 144 Mpx in a few hundred KB
    return buf.getvalue()


def _scramble(png: bytes) -> bytes:
    """Keep the PNG header valid but overwrite the compressed pixel data."""
    data = bytearray(png)
    start = png.index(b"IDAT") + 8
    data[start : start + 64] = bytes(range(64))
    return bytes(data)


def _over_cap() -> bytes:
    # 2500 x 2000 = 5 Mpx of noise: over the 4 Mpx cap but plausibly a real photo.
    return image_bytes(1, size=(2500, 2000), fmt="JPEG")


@pytest.fixture()
def mixed_source(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    good = {f"good{i}.jpg": image_bytes(i) for i in range(4)}
    good["sub/good.png"] = image_bytes(10, fmt="PNG")
    for name, data in good.items():
        (src / name).write_bytes(data)
    whole = good["good0.jpg"]
    bad = {
        "zero.jpg": (b"", "empty_file"),
        "notes.txt": (b"not an image at all", "not_an_image"),
        "trunc.jpg": (whole[: len(whole) // 2], "truncated"),
        "bomb.png": (_bomb(), "decompression_bomb"),
        "huge.jpg": (_over_cap(), "over_pixel_cap"),
        "copy_of_good1.jpg": (good["good1.jpg"], "duplicate_content"),
        "corrupt.png": (_scramble(good["sub/good.png"]), None),
    }
    for name, (data, _) in bad.items():
        (src / name).write_bytes(data)
    (src / ".DS_Store").write_bytes(b"junk")  # hidden files are not uploads
    (src / "labels.csv").write_text(
        "path,label,uploader_id\ngood0.jpg,clean,u1\ngood1.jpg,promo_spam,u2\nmissing.jpg,clean,u3\n"
    )
    return src, good, bad


def test_every_file_is_accounted_for(mixed_source, tmp_path):
    src, good, bad = mixed_source
    summary = ingest(str(src), tmp_path / "out", store=ImageStore(tmp_path / "store"), cfg=CFG)
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert summary.found == len(good) + len(bad) == summary.ingested + summary.quarantined
    assert len(manifest) == len(good) and len(quarantine) == len(bad)
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    reasons = dict(zip(quarantine["uri"].str.rsplit("/", n=1).str[-1], quarantine["reason"], strict=True))
    for name, (_, expected) in bad.items():
        assert reasons[name.split("/")[-1]] in QUARANTINE_REASONS
        if expected:
            assert reasons[name] == expected, name
    assert reasons["corrupt.png"] in ("corrupt", "truncated")
    assert summary.labels_without_image == 1


def test_labels_and_metadata_join(mixed_source, tmp_path):
    src, _, _ = mixed_source
    ingest(str(src), tmp_path / "out", store=ImageStore(tmp_path / "store"), cfg=CFG)
    m = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    by_uri = m.set_index(m["uri"].str.rsplit("/", n=1).str[-1])
    assert by_uri.loc["good1.jpg", "label"] == "promo_spam"
    assert by_uri.loc["good1.jpg", "label_source"] == "import"
    assert by_uri.loc["good1.jpg", "uploader_id"] == "u2"
    assert by_uri.loc["good2.jpg", "label"] is None and by_uri.loc["good2.jpg", "label_source"] == "none"
    assert (m["image_id"].str.len() == 64).all() and (m["phash"].str.len() == 16).all()


def test_reingest_changes_nothing(mixed_source, tmp_path):
    src, _, _ = mixed_source
    store = ImageStore(tmp_path / "store")
    first = ingest(str(src), tmp_path / "out", store=store, cfg=CFG)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    second = ingest(str(src), tmp_path / "out", store=store, cfg=IngestConfig(max_pixels=4_000_000, workers=2))
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert before == after
    assert first.new_in_store == first.ingested and second.new_in_store == 0


def test_outputs_do_not_depend_on_where_the_source_or_store_sit(mixed_source, tmp_path, monkeypatch):
    """The same files at two absolute paths (one given relative to the cwd), two stores: identical bytes."""
    src, good, bad = mixed_source
    first, second = tmp_path / "a" / "deep" / "checkout" / "uploads", tmp_path / "b" / "uploads"
    shutil.copytree(src, first)
    shutil.copytree(src, second)
    now = pd.Timestamp("2024-05-01", tz="UTC")
    ingest(str(first), tmp_path / "out1", store=ImageStore(tmp_path / "a" / "store"), cfg=CFG, now=now)
    monkeypatch.chdir(tmp_path / "b")
    ingest("uploads", tmp_path / "out2", store=ImageStore(tmp_path / "b" / "images"), cfg=CFG, now=now)
    outputs = ("manifest.parquet", "quarantine.parquet", "ingest_summary.json")
    for name in outputs:
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes(), name
    manifest = pd.read_parquet(tmp_path / "out1" / "manifest.parquet")
    quarantine = pd.read_parquet(tmp_path / "out1" / "quarantine.parquet")
    assert set(manifest["uri"]) == set(good) and set(quarantine["uri"]) == set(bad)  # relative to the source
    assert not any(str(tmp_path) in (tmp_path / "out1" / name).read_text(errors="ignore") for name in outputs)


def test_the_decode_limits_are_recorded_for_training(mixed_source, tmp_path):
    src, _, _ = mixed_source
    cfg = IngestConfig(max_pixels=4_000_000, max_bytes=10_000_000, allowed_formats=("JPEG", "PNG"), workers=1)
    ingest(str(src), tmp_path / "out", store=ImageStore(tmp_path / "store"), cfg=cfg)
    assert read_decode_limits(tmp_path / "out") == DecodeLimits(4_000_000, 10_000_000, ("JPEG", "PNG"))
    summary = json.loads((tmp_path / "out" / "ingest_summary.json").read_text())
    del summary["decode_limits"]  # as written before the limits were recorded
    (tmp_path / "out" / "ingest_summary.json").write_text(json.dumps(summary))
    assert read_decode_limits(tmp_path / "out") == DecodeLimits()
    with pytest.raises(FileNotFoundError, match="modops ingest"):
        read_decode_limits(tmp_path / "elsewhere")


def test_an_unknown_format_name_is_a_config_error_with_a_hint():
    with pytest.raises(ConfigError, match="did you mean 'JPEG'"):
        load_section({"ingest": {"allowed_formats": ["JPG"]}}, "ingest")
    cfg = load_section({"ingest": {"allowed_formats": ["jpeg", "MPO"]}}, "ingest")
    assert cfg.decode_limits().allowed_formats == ("JPEG", "MPO")


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="source folder not found"):
        ingest(str(tmp_path / "nope"), tmp_path / "out", store=ImageStore(tmp_path / "s"), cfg=CFG)


def test_bad_labels_file_is_a_clear_error(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(image_bytes(1))
    (src / "labels.csv").write_text("file,label\na.jpg,clean\n")
    with pytest.raises(ValueError, match="lacks column"):
        ingest(str(src), tmp_path / "out", store=ImageStore(tmp_path / "s"), cfg=CFG)


def test_store_rejects_bad_ids_and_explains_missing(tmp_path):
    store = ImageStore(tmp_path)
    with pytest.raises(ValueError):
        store.path("../etc/passwd")
    with pytest.raises(FileNotFoundError, match="modops ingest"):
        store.get("0" * 64)


def test_reviewed_uploads_join_the_pool_and_a_copy_of_a_pool_file_is_a_duplicate(mixed_source, tmp_path):
    from modops.data.ingest import REVIEWED_PREFIX

    src, good, _ = mixed_source
    reviewed = tmp_path / "reviewed"
    (reviewed / "ab").mkdir(parents=True)
    (reviewed / "ab" / "new.jpg").write_bytes(image_bytes(77))
    (reviewed / "ab" / "again.jpg").write_bytes(good["good2.jpg"])  # reviewed after being uploaded twice
    (reviewed / "ab" / "bad.jpg").write_bytes(b"junk")
    summary = ingest(
        str(src), tmp_path / "out", store=ImageStore(tmp_path / "store"), cfg=CFG, reviewed_source=str(reviewed)
    )
    m = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    q = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert summary.found == summary.ingested + summary.quarantined
    assert (m["uri"] == f"{REVIEWED_PREFIX}ab/new.jpg").sum() == 1
    assert m.loc[m["uri"] == f"{REVIEWED_PREFIX}ab/new.jpg", "label"].isna().all()  # labels live in the label store
    assert "good2.jpg" in set(m["uri"])  # the pool's own path wins over the reviewed copy
    dup = q.set_index("uri").loc[f"{REVIEWED_PREFIX}ab/again.jpg"]
    assert dup["reason"] == "duplicate_content"
    assert q.set_index("uri").loc[f"{REVIEWED_PREFIX}ab/bad.jpg", "reason"] == "not_an_image"
    # No reviewed folder yet (before the first relabel round): the same as an empty one.
    again = ingest(
        str(src), tmp_path / "out2", store=ImageStore(tmp_path / "store"), cfg=CFG, reviewed_source=str(tmp_path / "no")
    )
    assert again.found == summary.found - 3
    # The source's own rows, as cold start reads them, do not change when reviewed uploads arrive.
    source_rows = (tmp_path / "out" / "source_manifest.parquet").read_bytes()
    assert source_rows == (tmp_path / "out2" / "source_manifest.parquet").read_bytes()
    assert set(pd.read_parquet(tmp_path / "out" / "source_manifest.parquet")["uri"]) == set(m["uri"]) - {
        f"{REVIEWED_PREFIX}ab/new.jpg"
    }
