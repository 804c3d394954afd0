"""The moderation API end to end (in-process): the issue's story, auth, hostile uploads."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modops.data.labelstore import LabelStore
from tests.moderation.conftest import encode, moderate_cfg, picture


def post(client: TestClient, data: bytes, *, uploader: str = "u1", category: str = "restaurants", name="a.png"):  # noqa: ANN001, ANN201
    return client.post(
        "/v1/uploads",
        files={"image": (name, data, "application/octet-stream")},
        data={"uploader_id": uploader, "business_category": category},
    )


@pytest.fixture
def world(service_factory, request: pytest.FixtureRequest):  # noqa: ANN001, ANN201
    """(service, client, reviewer headers, admin headers); SQLite unless parametrized ``postgresql``."""
    from modops.moderation.app import create_app

    backend = getattr(request, "param", "sqlite")
    db_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    # Blocking off (block_at above 1): the story is about the queue; test_blocked_at_a_high_score blocks.
    service = service_factory(moderate_cfg(block_at=2.0), db_url=db_url)
    client = TestClient(create_app(service))
    _, reviewer = service.store.add_reviewer("rita", role="reviewer")
    _, admin = service.store.add_reviewer("adam", role="admin")
    return service, client, {"Authorization": f"Bearer {reviewer}"}, {"Authorization": f"Bearer {admin}"}


@pytest.mark.parametrize("world", ["sqlite", "postgresql"], indirect=True)
def test_the_issue_story(world, tmp_path: Path) -> None:  # noqa: ANN001
    service, client, rev, adm = world
    spam = picture(1, tint="red")

    # a spam image is flagged and queued, hidden from public reads
    r = post(client, encode(spam))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["decision"] == "pending_review" and body["scores"]["promo_spam"] > 0.9
    assert {x["step"] for x in body["reasons"]} >= {"stage1", "stage2"}
    spam_id = body["id"]
    assert client.get(f"/v1/uploads/{spam_id}").status_code == 404
    assert client.get(f"/v1/uploads/{spam_id}/image").status_code == 404
    queue = client.get("/v1/review/queue", headers=rev).json()
    assert [q["id"] for q in queue] == [spam_id]

    # a reviewer removes it; a re-upload (re-encoded, resized) is discarded by the bank
    r = client.post(f"/v1/review/uploads/{spam_id}/remove", headers=rev, json={"note": "phone number"})
    assert r.status_code == 200 and r.json()["status"] == "removed"
    copy = encode(spam.resize((150, 150)), "JPEG", quality=70)
    r = post(client, copy, uploader="u9", name="again.jpg")
    assert r.status_code == 201 and r.json()["decision"] == "discarded", r.json()
    assert r.json()["reasons"][0]["code"] == "known_spam"

    # a restored false flag becomes visible and enters the allow bank
    flagged = picture(2, tint="red")
    false_id = post(client, encode(flagged)).json()["id"]
    r = client.post(f"/v1/review/uploads/{false_id}/restore", headers=rev)
    assert r.status_code == 200 and r.json()["status"] == "allowed"
    assert client.get(f"/v1/uploads/{false_id}").status_code == 200
    assert client.get(f"/v1/uploads/{false_id}/image").content == encode(flagged)
    again = post(client, encode(flagged.resize((170, 170)), "JPEG", quality=80), uploader="u3").json()
    assert again["decision"] == "allowed" and again["reasons"][0]["code"] == "allow_listed"

    # closing a profile removes all its content
    clean_id = post(client, encode(picture(3, tint="green")), uploader="bad").json()["id"]
    pending_id = post(client, encode(picture(4, tint="red")), uploader="bad").json()["id"]
    assert client.get(f"/v1/uploads/{clean_id}").status_code == 200
    r = client.post("/v1/review/profiles/bad/close", headers=adm, json={"note": "spammer"})
    assert r.status_code == 200 and sorted(r.json()["removed"]) == sorted([clean_id, pending_id])
    assert client.get(f"/v1/uploads/{clean_id}").status_code == 404
    assert pending_id not in [q["id"] for q in client.get("/v1/review/queue", headers=rev).json()]
    assert post(client, encode(picture(5, tint="green")), uploader="bad").json()["decision"] == "discarded"

    # the label store holds the reviewers' decisions, and the images joined the pool
    events = LabelStore(tmp_path / "labels").events()
    got = {(e.label, e.source, e.who) for e in events.itertuples()}
    assert got == {("promo_spam", "reviewer", "rita"), ("clean", "reviewer", "rita")}
    assert len(list((tmp_path / "reviewed").iterdir())) == 2

    # every action is audited: who, what, before, after
    audit = client.get("/v1/review/audit", headers=adm).json()
    removal = next(a for a in audit if a["action"] == "remove" and a["upload_id"] == spam_id)
    assert removal["reviewer"] == "rita" and removal["before"]["status"] == "pending_review"
    assert removal["after"]["status"] == "removed" and removal["note"] == "phone number"


def test_auth_and_roles_change_nothing(world) -> None:  # noqa: ANN001
    service, client, rev, adm = world
    up = post(client, encode(picture(11, tint="red"))).json()["id"]
    before = service.store.get_upload(up)
    assert client.get("/v1/review/queue").status_code == 401
    assert client.get("/v1/review/queue", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post(f"/v1/review/uploads/{up}/remove").status_code == 401
    assert client.post(f"/v1/review/uploads/{up}/remove", headers={"Authorization": "Basic eDp5"}).status_code == 401
    assert client.post("/v1/review/profiles/u1/close", headers=rev).status_code == 403
    assert client.get("/v1/review/audit", headers=rev).status_code == 403
    assert service.store.get_upload(up) == before
    assert not service.store.profile_closed("u1")
    assert all(a.action == "add_reviewer" for a in service.store.audit_log())
    # a deactivated token stops working
    service.store.deactivate_reviewer("rita", by="test")
    assert client.get("/v1/review/queue", headers=rev).status_code == 401


def test_review_errors_are_4xx(world) -> None:  # noqa: ANN001
    _service, client, rev, _adm = world
    up = post(client, encode(picture(12, tint="red"))).json()["id"]
    assert client.post("/v1/review/uploads/nope/remove", headers=rev).status_code == 404
    assert client.post(f"/v1/review/uploads/{up}/explode", headers=rev).status_code == 404
    assert client.post(f"/v1/review/uploads/{up}/remove", headers=rev, json={"label": "lol"}).status_code == 422
    assert client.post(f"/v1/review/uploads/{up}/remove", headers=rev, json={"label": "clean"}).status_code == 422
    assert client.post(f"/v1/review/uploads/{up}/approve", headers=rev).status_code == 200
    assert client.post(f"/v1/review/uploads/{up}/approve", headers=rev).status_code == 409


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds one tiny compressed row: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("empty", b"", 422),
        ("random bytes", bytes(range(256)) * 8, 415),
        ("html", b"<html><script>alert(1)</script></html>", 415),
        ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>', 415),
        ("truncated png", encode(picture(20, tint="grey"))[:300], 422),
        ("bomb", _png_header_only(60_000, 60_000), 413),
        ("tiny", encode(picture(21, tint="grey", size=4)), 422),
    ],
)
def test_hostile_uploads_get_4xx(world, name: str, data: bytes, status: int) -> None:  # noqa: ANN001
    service, client, _rev, _adm = world
    r = post(client, data, name="../../../../etc/passwd")
    assert r.status_code == status, (name, r.status_code, r.text)
    assert r.json()["detail"]["reason"], r.text
    assert service.store.queue_size() == 0 and not (
        service.images_dir.exists() and any(service.images_dir.rglob("*.*"))
    )


def test_oversized_upload_is_413_without_reading_it_all(world) -> None:  # noqa: ANN001
    service, client, _rev, _adm = world
    limit = service.limits.max_bytes
    r = post(client, b"\xff" * (limit + 1))
    assert r.status_code == 413 and r.json()["detail"]["reason"] == "file_too_large"


def test_bad_form_fields_are_422(world) -> None:  # noqa: ANN001
    _service, client, _rev, _adm = world
    img = encode(picture(30, tint="grey"))
    assert post(client, img, uploader="../etc").status_code == 422
    assert post(client, img, uploader="").status_code == 422
    r = client.post("/v1/uploads", data={"uploader_id": "u", "business_category": "c"})
    assert r.status_code == 422


def test_public_reads_hide_everything_not_allowed(world) -> None:  # noqa: ANN001
    service, client, rev, _adm = world
    grey = post(client, encode(picture(40, tint="grey"))).json()
    assert grey["decision"] == "allowed"
    assert client.get(f"/v1/uploads/{grey['id']}").json()["uploader_id"] == "u1"
    red = post(client, encode(picture(41, tint="red"))).json()["id"]
    for path in (f"/v1/uploads/{red}", f"/v1/uploads/{red}/image"):
        r = client.get(path)
        assert r.status_code == 404 and r.json() == {"detail": "no such upload"}
    for path in ("/v1/uploads/..%2F..%2Fetc%2Fpasswd/image", "/v1/uploads/%2Fetc%2Fpasswd/image"):
        r = client.get(path)
        assert r.status_code == 404 and b"root:" not in r.content
    assert client.get("/openapi.json").json()["paths"]["/v1/uploads"]["post"]


def test_blocked_at_a_high_score(service_factory) -> None:  # noqa: ANN001
    from modops.moderation.app import create_app
    from tests.moderation.conftest import moderate_cfg

    client = TestClient(create_app(service_factory(moderate_cfg(block_at=0.9))))
    assert post(client, encode(picture(50, tint="red"))).json()["decision"] == "blocked"


def test_healthz(world) -> None:  # noqa: ANN001
    _service, client, _rev, _adm = world
    assert client.get("/healthz").json() == {"status": "ok", "model_version": "7", "queue": 0}


def test_gradcam_of_a_model_without_the_layer_is_a_clear_501(world) -> None:  # noqa: ANN001
    _service, client, rev, _adm = world
    red = post(client, encode(picture(60, tint="red"))).json()["id"]
    r = client.get(f"/v1/review/uploads/{red}/gradcam.png", headers=rev)
    assert r.status_code == 501 and "Grad-CAM" in r.json()["detail"]


def test_bank_codes_of_another_hash_scheme_are_rehashed_from_their_pictures(service_factory, caplog) -> None:  # noqa: ANN001
    from modops.moderation.app import create_app

    first = service_factory(moderate_cfg(block_at=2.0))
    client = TestClient(create_app(first))
    reviewer, _ = first.store.add_reviewer("rita", role="reviewer")
    spam = picture(70, tint="red")
    spam_id = post(client, encode(spam)).json()["id"]
    first.review(spam_id, action="remove", reviewer=reviewer)
    # As an older release left it: the code made by another scheme, and an entry whose picture is gone.
    first.store.rehash_bank_entry("spam", spam_id, code=b"\xff" * 32, scheme="phash/16")
    first.store.add_bank_entry("spam", key="gone", code=b"\x00" * 32, scheme=None, upload_id=None, added_by="x")

    with caplog.at_level("WARNING", logger="modops.moderation.service"):
        second = service_factory(moderate_cfg(block_at=2.0))
    assert "re-hashed 1 of 2 entries" in caplog.text and "'gone'" in caplog.text
    assert second.store.foreign_bank_entries("spam", scheme=second.hash_scheme) == [("gone", None, None)]
    assert len(second.banks["spam"]) == 1
    copy = encode(spam.resize((150, 150)), "JPEG", quality=70)
    r = post(TestClient(create_app(second)), copy, uploader="u9")
    assert r.json()["decision"] == "discarded" and r.json()["reasons"][0]["code"] == "known_spam"
