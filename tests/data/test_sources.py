"""Reading sources: sizes are checked before bytes are read, and relative uris stay inside their root."""

from __future__ import annotations

import os
import pickle

import pytest

from modops.data import sources
from modops.data.images import FileTooLargeError, QuarantineError
from modops.data.sources import list_source, read_uri


def test_local_items_are_relative_to_the_source_root(tmp_path):
    (tmp_path / "src" / "day1").mkdir(parents=True)
    (tmp_path / "src" / "day1" / "a.jpg").write_bytes(b"a")
    (tmp_path / "src" / "b.png").write_bytes(b"b")
    items = list_source(str(tmp_path / "src"))
    assert [(i.uri, i.rel) for i in items] == [("b.png", "b.png"), ("day1/a.jpg", "day1/a.jpg")]
    assert read_uri(items[1].uri, root=tmp_path / "src") == b"a"


def test_relative_uris_need_their_root_and_stay_inside_it(tmp_path):
    (tmp_path / "secret").write_bytes(b"x")
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match="source root"):
        read_uri("a.jpg")
    with pytest.raises(ValueError, match="climbs out"):
        read_uri("../secret", root=tmp_path / "src")


def test_a_local_file_over_the_cap_is_refused_from_its_size(tmp_path):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(8 * 1024**3)  # sparse: reading it whole would take 8 GiB of memory
    with pytest.raises(FileTooLargeError) as err:
        read_uri(str(big), max_bytes=1000)
    assert err.value.size == 8 * 1024**3 and err.value.reason == "file_too_large"


def test_a_file_growing_after_the_size_check_is_read_no_further_than_the_cap(tmp_path, monkeypatch):
    path = tmp_path / "growing.jpg"
    path.write_bytes(b"x" * 5000)
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> os.stat_result:  # the size it had when checked
        st = tuple(real_fstat(fd))
        return os.stat_result(st[:6] + (10,) + st[7:])

    monkeypatch.setattr(sources.os, "fstat", stale_fstat)
    with pytest.raises(FileTooLargeError) as err:
        read_uri(str(path), max_bytes=100)
    assert err.value.size == 101  # max_bytes + 1 bytes read, not 5000
    assert read_uri(str(path), max_bytes=5000) == b"x" * 5000


def test_special_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="not a regular file"):
        read_uri("pipe", root=tmp_path, max_bytes=100)
    with pytest.raises(OSError, match="not a regular file"):
        read_uri(str(tmp_path), max_bytes=100)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data, self.read_sizes, self.closed = data, [], False

    def read(self, size: int | None = None) -> bytes:
        self.read_sizes.append(size)
        return self.data if size is None else self.data[:size]

    def close(self) -> None:
        self.closed = True


class _Client:
    def __init__(self, body: _Body, content_length: int) -> None:
        self.body, self.content_length = body, content_length

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803 - boto3's argument names
        return {"Body": self.body, "ContentLength": self.content_length}


def test_an_s3_object_over_the_cap_is_refused_from_its_content_length(monkeypatch):
    body = _Body(b"never read")
    monkeypatch.setattr(sources, "s3_client", lambda endpoint=None: _Client(body, 10**12))
    with pytest.raises(FileTooLargeError) as err:
        read_uri("s3://bucket/huge.jpg", max_bytes=1000)
    assert err.value.size == 10**12 and body.read_sizes == [] and body.closed


def test_an_s3_body_longer_than_announced_is_cut_at_the_cap(monkeypatch):
    body = _Body(b"y" * 5000)
    monkeypatch.setattr(sources, "s3_client", lambda endpoint=None: _Client(body, 10))
    with pytest.raises(FileTooLargeError):
        read_uri("s3://bucket/liar.jpg", max_bytes=100)
    assert body.read_sizes == [101] and body.closed


def test_quarantine_errors_cross_process_boundaries_intact():
    """Worker processes hand errors back pickled; the reason, detail and size must survive."""
    for exc in (QuarantineError("corrupt", "bad huffman"), FileTooLargeError(10**12, 1000)):
        back = pickle.loads(pickle.dumps(exc))
        assert (type(back), back.reason, back.detail) == (type(exc), exc.reason, exc.detail)
    assert pickle.loads(pickle.dumps(FileTooLargeError(10**12, 1000))).size == 10**12
