"""Nothing crashes the data path: a hostile upload folder ingests with every file accounted for.

The folder mixes good images with files whose Pillow plugin raises an unexpected exception
class (patched in, as a plugin bug would), truncated files of every allowed format,
decompression bombs, a file over the size cap that must not be read, and a FIFO. Both the
library call and ``modops ingest`` must finish (exit 0), quarantine each bad file with a reason
(the exception class in ``detail``), and put only decodable images in the manifest.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image, PcxImagePlugin, SgiImagePlugin, TgaImagePlugin
from typer.testing import CliRunner

from modops.cli import app
from modops.config import IngestConfig
from modops.data.images import QUARANTINE_REASONS, open_rgb
from modops.data.ingest import ingest
from modops.data.store import ImageStore
from tests.conftest import image_bytes

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PCX", "TGA", "SGI")
MAX_BYTES = 1_000_000
CFG = IngestConfig(max_pixels=4_000_000, max_bytes=MAX_BYTES, allowed_formats=FORMATS, workers=1)


class PluginExploded(MemoryError):
    """A decoder's own exception class, as a buggy plugin might raise."""


def _raising(exc: BaseException):
    def boom(self, *args, **kwargs):
        raise exc

    return boom


@pytest.fixture()
def buggy_plugins(monkeypatch):
    """Three plugins raise what no caller expects: on open, and on load (two classes)."""
    monkeypatch.setattr(PcxImagePlugin.PcxImageFile, "_open", _raising(RuntimeError("pcx plugin bug")))
    monkeypatch.setattr(TgaImagePlugin.TgaImageFile, "load", _raising(struct.error("unpack requires 18 bytes")))
    monkeypatch.setattr(SgiImagePlugin.SgiImageFile, "load", _raising(PluginExploded("cannot allocate 9 EiB")))


def _lying_png(width: int, height: int) -> bytes:
    """A valid small PNG whose header (with a correct CRC) claims ``width x height`` pixels."""
    data = bytearray(image_bytes(3, size=(8, 8), fmt="PNG"))
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    data[start + 17 : start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start : start + 17])))
    return bytes(data)


def _real_bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(buf, format="PNG")  # 144 Mpx in a few hundred KB
    return buf.getvalue()


def _write(src: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)


@pytest.fixture()
def hostile_source(tmp_path) -> tuple[Path, set[str], dict[str, tuple[str | None, str]]]:
    """``(folder, good names, {bad name: (expected reason or None for any, text expected in detail)})``."""
    src = tmp_path / "uploads"
    good = {f"good{i}.jpg": image_bytes(i) for i in range(3)} | {"sub/good.png": image_bytes(7, fmt="PNG")}
    bad: dict[str, tuple[str | None, str]] = {
        "plugin/open_raises.pcx": ("decoder_error", "RuntimeError"),
        "plugin/load_raises.tga": ("decoder_error", "struct.error"),
        "plugin/load_raises.sgi": ("decoder_error", "PluginExploded"),
        "bomb.png": ("decompression_bomb", ""),
        "lying_header.png": ("decompression_bomb", "pixels"),
        "too_big.jpg": ("file_too_large", f"> {MAX_BYTES}"),
        "pipe.jpg": ("read_error", "not a regular file"),
        "escape.jpg": ("read_error", "outside the source folder"),  # a link to an image elsewhere
        "linked_dir": ("read_error", "outside the source folder"),  # a linked folder is not walked
        "sub/loop": ("read_error", "not a regular file"),  # a link to its own parent: no endless walk
        "inside.jpg": ("duplicate_content", ""),  # a link inside the folder is read, once
        "loop_a.jpg": ("read_error", "a symlink loop (not followed)"),  # two links to each other
        "loop_b.jpg": ("read_error", "a symlink loop (not followed)"),
    }
    files = dict(good)
    files |= {
        "plugin/open_raises.pcx": image_bytes(20, fmt="PCX"),
        "plugin/load_raises.tga": image_bytes(21, fmt="TGA"),
        "plugin/load_raises.sgi": image_bytes(22, fmt="SGI"),
        "bomb.png": _real_bomb(),
        "lying_header.png": _lying_png(100_000, 100_000),
    }
    for i, fmt in enumerate(IngestConfig().allowed_formats):  # the buggy plugins' formats have their own rows
        whole = image_bytes(30 + i, size=(64, 48), fmt=fmt)
        files[f"truncated/half.{fmt.lower()}"] = whole[: len(whole) // 2]
        bad[f"truncated/half.{fmt.lower()}"] = (None, "")
    _write(src, files)
    with open(src / "too_big.jpg", "wb") as f:
        f.truncate(4 * 1024**3)  # sparse: 4 GiB that must never be read
    os.mkfifo(src / "pipe.jpg")  # opening it for reading would block a naive reader forever
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(image_bytes(40))
    (src / "escape.jpg").symlink_to(outside / "secret.jpg")
    (src / "linked_dir").symlink_to(outside, target_is_directory=True)
    (src / "sub" / "loop").symlink_to("..", target_is_directory=True)
    (src / "inside.jpg").symlink_to("good0.jpg")
    (src / "loop_a.jpg").symlink_to("loop_b.jpg")
    (src / "loop_b.jpg").symlink_to("loop_a.jpg")
    return src, set(good), bad


def _check(out: Path, store: ImageStore, good: set[str], bad: dict[str, tuple[str | None, str]]) -> None:
    manifest = pd.read_parquet(out / "manifest.parquet")
    quarantine = pd.read_parquet(out / "quarantine.parquet").set_index("uri")
    summary = json.loads((out / "ingest_summary.json").read_text())
    assert summary["found"] == len(good) + len(bad) == summary["ingested"] + summary["quarantined"]
    assert set(manifest["uri"]) == good and set(quarantine.index) == set(bad)
    for name, (reason, detail) in bad.items():
        row = quarantine.loc[name]
        assert row["reason"] in QUARANTINE_REASONS and (reason is None or row["reason"] == reason), (name, row)
        assert detail in row["detail"], (name, row["detail"])
        assert str(out.parent) not in row["detail"], (name, row["detail"])  # rows name the uri, not a local path
    assert quarantine.loc["too_big.jpg", "bytes"] == 4 * 1024**3  # the size from stat, no byte read
    for image_id in manifest["image_id"]:  # everything admitted decodes for training and serving too
        assert open_rgb(store.get(image_id), limits=CFG.decode_limits()).mode == "RGB"


@pytest.mark.usefixtures("buggy_plugins")
def test_hostile_folder_ingests_with_every_file_accounted_for(hostile_source, tmp_path):
    src, good, bad = hostile_source
    store = ImageStore(tmp_path / "store")
    summary = ingest(str(src), tmp_path / "out", store=store, cfg=CFG)
    assert summary.quarantine_reasons.get("decoder_error") == 3
    _check(tmp_path / "out", store, good, bad)


@pytest.mark.usefixtures("buggy_plugins")
def test_modops_ingest_exits_zero_on_a_hostile_folder(hostile_source, tmp_path):
    src, good, bad = hostile_source
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    # One worker: the patched plugins live in this process only.
    params["ingest"].update(CFG.model_dump(include={"max_pixels", "max_bytes", "workers"}))
    params["ingest"]["allowed_formats"] = list(FORMATS)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["ingest", str(src), "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")]
    args += ["--labels", str(tmp_path / "labels"), "--params", str(tmp_path / "params.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    _check(tmp_path / "out", ImageStore(tmp_path / "store"), good, bad)
