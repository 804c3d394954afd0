"""Ingest from s3:// against moto's standalone S3 server over real HTTP on loopback (no patching)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pandas as pd
import pytest

from modops.config import IngestConfig
from modops.data.ingest import ingest
from modops.data.store import ImageStore
from tests.conftest import image_bytes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto_server did not start within 30 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_ingest_from_s3_prefix(s3_endpoint, aws_env, tmp_path):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="uploads")
    for i in range(3):
        s3.put_object(Bucket="uploads", Key=f"day1/img{i}.jpg", Body=image_bytes(i))
    s3.put_object(Bucket="uploads", Key="day1/broken.jpg", Body=b"\xff\xd8\xff garbage")
    s3.put_object(Bucket="uploads", Key="day1/labels.csv", Body=b"path,label\nimg0.jpg,clean\nimg1.jpg,weapon\n")
    s3.put_object(Bucket="uploads", Key="day2/other.jpg", Body=image_bytes(99))  # outside the prefix

    cfg = IngestConfig(workers=2)
    summary = ingest(
        "s3://uploads/day1",
        tmp_path / "out",
        store=ImageStore(tmp_path / "store"),
        cfg=cfg,
        s3_endpoint_url=s3_endpoint,
    )

    assert (summary.found, summary.ingested, summary.quarantined) == (4, 3, 1)
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert set(manifest["uri"]) == {f"s3://uploads/day1/img{i}.jpg" for i in range(3)}
    assert manifest.set_index("uri").loc["s3://uploads/day1/img1.jpg", "label"] == "weapon"
    quarantine = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    assert quarantine["uri"].tolist() == ["s3://uploads/day1/broken.jpg"]
    assert quarantine["reason"].iloc[0] in ("truncated", "corrupt", "not_an_image")
    assert all(i in ImageStore(tmp_path / "store") for i in manifest["image_id"])


def test_an_object_over_max_bytes_is_quarantined_with_its_size(s3_endpoint, aws_env, tmp_path):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="big")
    small, large = image_bytes(1), image_bytes(2, size=(400, 300))
    s3.put_object(Bucket="big", Key="in/small.jpg", Body=small)
    s3.put_object(Bucket="big", Key="in/large.jpg", Body=large)
    cfg = IngestConfig(workers=1, max_bytes=len(small) + 1)
    summary = ingest(
        "s3://big/in", tmp_path / "out", store=ImageStore(tmp_path / "s"), cfg=cfg, s3_endpoint_url=s3_endpoint
    )
    assert (summary.found, summary.ingested, summary.quarantined) == (2, 1, 1)
    row = pd.read_parquet(tmp_path / "out" / "quarantine.parquet").iloc[0]
    assert (row["uri"], row["reason"], row["bytes"]) == ("s3://big/in/large.jpg", "file_too_large", len(large))


def test_missing_bucket_is_an_error_not_a_silent_empty_run(s3_endpoint, aws_env, tmp_path):
    with pytest.raises(Exception, match="NoSuchBucket"):
        ingest(
            "s3://no-such-bucket/x",
            tmp_path / "out",
            store=ImageStore(tmp_path / "s"),
            cfg=IngestConfig(workers=1),
            s3_endpoint_url=s3_endpoint,
        )


def test_s3_uri_must_name_a_bucket():
    from modops.data.sources import read_uri

    with pytest.raises(ValueError, match="expected s3://bucket/prefix"):
        read_uri("s3:///key", s3_endpoint_url=os.environ.get("UNUSED"))
