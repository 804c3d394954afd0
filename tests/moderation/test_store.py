"""The review store on SQLite (a tmp file) and on PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from modops.moderation.store import (
    DuplicateReviewer,
    DuplicateUpload,
    InvalidTransition,
    Reviewer,
    ReviewStore,
    StoreError,
    UnknownReviewer,
    UnknownUpload,
    UploadRecord,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
STATUSES = ("allowed", "pending_review", "blocked", "discarded", "removed")
# Written out here rather than imported, so a wrong table in the store fails the test.
ALLOWED = {
    ("approve", "pending_review"): "allowed",
    ("remove", "pending_review"): "removed",
    ("remove", "allowed"): "removed",
    ("remove", "blocked"): "removed",
    ("restore", "pending_review"): "allowed",
    ("restore", "blocked"): "allowed",
    ("restore", "removed"): "allowed",
    ("restore", "discarded"): "allowed",
}


@pytest.fixture
def store(db_url: str) -> Iterator[ReviewStore]:
    with ReviewStore(db_url) as opened:
        yield opened


@pytest.fixture
def ann(store: ReviewStore) -> Reviewer:
    return store.add_reviewer("ann", role="reviewer")[0]


def _add(
    store: ReviewStore,
    *,
    uploader: str = "u1",
    decision: str = "pending_review",
    at: datetime = T0,
    upload_id: str | None = None,
) -> UploadRecord:
    return store.add_upload(
        uploader_id=uploader,
        business_category="restaurant",
        sha256=hashlib.sha256(f"{uploader}{at}{upload_id}".encode()).hexdigest(),
        image_path="images/ab/cd.jpg",
        decision=decision,  # type: ignore[arg-type]
        reasons=[{"stage": "stage1", "rule": "phone_number", "score": 0.91}],
        scores={"promo_spam": 0.91, "disgusting": 0.02},
        model_version="7",
        upload_id=upload_id,
        now=at,
    )


def _raw_rows(url: str, sql: str) -> list[dict]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(text(sql)).mappings()]
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------- uploads


def test_add_and_get_round_trip_with_utc_timestamps(store: ReviewStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    added = store.add_upload(
        uploader_id="u1",
        business_category="restaurant",
        sha256="ab" * 32,
        image_path="images/ab/cd.jpg",
        decision="pending_review",
        reasons=[{"stage": "ocr", "rule": "url", "text": "buy now"}],
        scores={"promo_spam": np.float32(0.75), "disgusting": 0.125},
        model_version=None,
        upload_id="up-1",
        now=datetime(2026, 1, 5, 14, 0, tzinfo=plus_two),
    )
    got = store.get_upload("up-1")
    assert got == added
    assert got.created_at == got.updated_at == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert got.created_at.utcoffset() == timedelta(0)
    assert (got.status, got.decision, got.reviewed_by, got.model_version) == ("pending_review",) * 2 + (None, None)
    assert got.reasons == [{"stage": "ocr", "rule": "url", "text": "buy now"}]
    assert got.scores == {"promo_spam": 0.75, "disgusting": 0.125}
    assert not got.visible
    assert store.get_upload("nope") is None

    auto = _add(store, decision="allowed")
    assert len(auto.id) == 32 and int(auto.id, 16) >= 0  # uuid4().hex
    assert store.get_upload(auto.id).visible


def test_add_upload_refuses_bad_input_and_stores_nothing(store: ReviewStore) -> None:
    _add(store, upload_id="dup")
    with pytest.raises(DuplicateUpload, match="dup"):
        _add(store, upload_id="dup")
    with pytest.raises(ValueError, match="unknown decision 'maybe'"):
        _add(store, decision="maybe")
    with pytest.raises(ValueError, match="naive datetime"):
        _add(store, at=datetime(2026, 1, 5, 12, 0))
    with pytest.raises(ValueError, match="not finite: promo_spam"):
        store.add_upload(
            uploader_id="u1",
            business_category="x",
            sha256="00" * 32,
            image_path="p",
            decision="pending_review",
            reasons=[],
            scores={"promo_spam": float("nan")},
            model_version=None,
        )
    assert [u.id for u in store.uploads_of("u1")] == ["dup"]


def test_queue_is_pending_only_oldest_first_with_limit_and_offset(store: ReviewStore) -> None:
    late = _add(store, at=T0 + timedelta(minutes=3))
    early = _add(store, at=T0 + timedelta(minutes=1))
    middle = _add(store, at=T0 + timedelta(minutes=2), uploader="u2")
    for status in ("allowed", "blocked", "discarded", "removed"):
        _add(store, decision=status, at=T0)  # older than every pending one, never in the queue
    assert [u.id for u in store.queue()] == [early.id, middle.id, late.id]
    assert [u.id for u in store.queue(limit=2)] == [early.id, middle.id]
    assert [u.id for u in store.queue(limit=5, offset=1)] == [middle.id, late.id]
    assert store.queue(limit=0) == []
    assert store.queue_size() == 3
    assert [u.id for u in store.uploads_of("u2")] == [middle.id]
    assert len(store.uploads_of("u1")) == 6
    with pytest.raises(ValueError, match="limit"):
        store.queue(limit=-1)


# ---------------------------------------------------------------------------------------------- reviews


def test_every_transition_allowed_or_refused_and_audited(store: ReviewStore, ann: Reviewer) -> None:
    when = T0 + timedelta(hours=1)
    done, refused = 0, 0
    for action in ("approve", "remove", "restore"):
        for status in STATUSES:
            upload = _add(store, decision=status)
            combo = f"{action} from {status}"
            if (action, status) in ALLOWED:
                target = ALLOWED[(action, status)]
                out = store.apply_review(upload.id, action=action, reviewer=ann, note=combo, now=when)  # type: ignore[arg-type]
                stored = store.get_upload(upload.id)
                assert out == stored, combo
                assert (stored.status, stored.decision, stored.reviewed_by) == (target, status, "ann"), combo
                assert (stored.created_at, stored.updated_at) == (T0, when), combo
                assert stored.visible == (target == "allowed"), combo
                [row] = store.audit_log(upload_id=upload.id)
                assert (row.reviewer, row.action, row.at, row.note) == ("ann", action, when, combo), combo
                assert (row.upload_id, row.uploader_id) == (upload.id, "u1"), combo
                assert (row.before, row.after) == ({"status": status}, {"status": target}), combo
                done += 1
            else:
                with pytest.raises(InvalidTransition, match=f"cannot {action} an upload that is {status}"):
                    store.apply_review(upload.id, action=action, reviewer=ann, now=when)  # type: ignore[arg-type]
                assert store.get_upload(upload.id) == upload, combo
                assert store.audit_log(upload_id=upload.id) == [], combo
                refused += 1
    assert (done, refused) == (8, 7)


def test_review_of_unknown_upload_or_action(store: ReviewStore, ann: Reviewer) -> None:
    with pytest.raises(UnknownUpload, match="no upload with id 'ghost'"):
        store.apply_review("ghost", action="approve", reviewer=ann)
    upload = _add(store)
    with pytest.raises(ValueError, match="unknown action 'ban'"):
        store.apply_review(upload.id, action="ban", reviewer=ann)  # type: ignore[arg-type]
    assert issubclass(UnknownUpload, LookupError) and issubclass(InvalidTransition, ValueError)
    assert store.get_upload(upload.id).status == "pending_review"


def _review(
    barrier: threading.Barrier, outcomes: dict, store: ReviewStore, who: Reviewer, upload_id: str, action: str
) -> None:
    """One reviewer's attempt, started together with the others; the outcome (record or error) under its name."""
    barrier.wait()
    try:
        outcomes[who.name] = store.apply_review(upload_id, action=action, reviewer=who)  # type: ignore[arg-type]
    except InvalidTransition as exc:
        outcomes[who.name] = exc


def test_concurrent_reviews_of_one_upload_exactly_one_wins(db_url: str) -> None:
    first, second = ReviewStore(db_url), ReviewStore(db_url)
    try:
        ann = first.add_reviewer("ann", role="reviewer")[0]
        bob = second.add_reviewer("bob", role="reviewer")[0]
        uploads = [_add(first, at=T0 + timedelta(seconds=i)) for i in range(6)]
        for upload in uploads:
            barrier = threading.Barrier(2)
            outcomes: dict[str, object] = {}
            # approve and restore both apply to pending_review, and neither applies to the allowed result.
            threads = [
                threading.Thread(target=_review, args=(barrier, outcomes, first, ann, upload.id, "approve")),
                threading.Thread(target=_review, args=(barrier, outcomes, second, bob, upload.id, "restore")),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            wins = [name for name, out in outcomes.items() if isinstance(out, UploadRecord)]
            losses = [name for name, out in outcomes.items() if isinstance(out, InvalidTransition)]
            assert len(wins) == 1 and len(losses) == 1, outcomes
            [row] = first.audit_log(upload_id=upload.id)
            assert row.reviewer == wins[0] == first.get_upload(upload.id).reviewed_by
    finally:
        first.close()
        second.close()


def test_review_waits_for_a_concurrent_writer_then_sees_its_change(
    store: ReviewStore, ann: Reviewer, db_url: str
) -> None:
    upload = _add(store)
    outcome: dict[str, object] = {}

    def review() -> None:
        try:
            outcome["result"] = store.apply_review(upload.id, action="approve", reviewer=ann)
        except StoreError as exc:
            outcome["result"] = exc

    other = create_engine(db_url)
    try:
        with other.connect() as conn:
            # Another writer changes the upload and holds its transaction open.
            conn.execute(text("UPDATE modops_uploads SET status = 'allowed' WHERE id = :id"), {"id": upload.id})
            thread = threading.Thread(target=review)
            thread.start()
            thread.join(0.5)
            assert thread.is_alive(), f"the review did not wait for the open write: {outcome}"
            conn.commit()
        thread.join(30)
    finally:
        other.dispose()
    assert isinstance(outcome["result"], InvalidTransition), outcome
    assert "cannot approve an upload that is allowed" in str(outcome["result"])
    assert store.audit_log(upload_id=upload.id) == []


# --------------------------------------------------------------------------------------------- profiles


def test_close_profile_removes_everything_leaves_queue_and_is_idempotent(store: ReviewStore, ann: Reviewer) -> None:
    mine = {
        status: _add(store, uploader="spammer", decision=status, at=T0 + timedelta(minutes=i))
        for i, status in enumerate(STATUSES)
    }
    theirs = _add(store, uploader="honest")
    closed_at = T0 + timedelta(hours=1)
    assert not store.profile_closed("spammer")

    changed = store.close_profile("spammer", reviewer=ann, note="scam ring", now=closed_at)

    assert [u.id for u in changed] == [mine[s].id for s in STATUSES if s != "removed"]
    assert all(u.status == "removed" and u.reviewed_by == "ann" and u.updated_at == closed_at for u in changed)
    assert [u.status for u in store.uploads_of("spammer")] == ["removed"] * 5
    assert not any(u.visible for u in store.uploads_of("spammer"))
    assert [u.id for u in store.queue()] == [theirs.id]
    assert store.profile_closed("spammer") and not store.profile_closed("honest")
    log = store.audit_log(uploader_id="spammer")
    assert {r.action for r in log} == {"close_profile"} and all(r.reviewer == "ann" for r in log)
    per_upload = {r.upload_id: (r.before, r.after) for r in log if r.upload_id is not None}
    assert per_upload == {u.id: ({"status": s}, {"status": "removed"}) for s, u in mine.items() if s != "removed"}
    [profile_row] = [r for r in log if r.upload_id is None]
    assert (profile_row.before, profile_row.after, profile_row.note) == (
        {"closed": False},
        {"closed": True, "removed": 4},
        "scam ring",
    )

    assert store.close_profile("spammer", reviewer=ann) == []
    assert len(store.audit_log(uploader_id="spammer")) == len(log)
    with pytest.raises(InvalidTransition, match="closed profile"):
        store.apply_review(mine["allowed"].id, action="restore", reviewer=ann)
    assert store.get_upload(mine["allowed"].id).status == "removed"


# -------------------------------------------------------------------------------------------- reviewers


def test_tokens_are_stored_hashed_and_authenticate(store: ReviewStore, db_url: str) -> None:
    ann, ann_token = store.add_reviewer("ann", role="admin")
    bob, bob_token = store.add_reviewer("bob", role="reviewer", by="ann")
    assert ann_token != bob_token and len(ann_token) >= 43  # 32 random bytes, url-safe base64
    assert (ann.name, ann.role, ann.active, bob.role) == ("ann", "admin", True, "reviewer")
    assert ann.created_at.utcoffset() == timedelta(0)

    stored = _raw_rows(db_url, "SELECT * FROM modops_reviewers ORDER BY id")
    for row, token in zip(stored, (ann_token, bob_token), strict=True):
        assert row["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
        assert not any(token in str(value) for value in row.values())
    audit_text = str(_raw_rows(db_url, "SELECT * FROM modops_audit"))
    assert ann_token not in audit_text and bob_token not in audit_text

    assert store.authenticate(ann_token) == ann
    assert store.authenticate(bob_token) == bob
    assert store.authenticate(ann_token + "x") is None
    assert store.authenticate("") is None

    store.deactivate_reviewer("bob", by="ann")
    store.deactivate_reviewer("bob", by="ann")  # already inactive: no second audit row
    assert store.authenticate(bob_token) is None
    assert [(r.name, r.active) for r in store.reviewers()] == [("ann", True), ("bob", False)]
    log = store.audit_log()
    assert [(r.action, r.reviewer, r.after) for r in log] == [
        ("deactivate_reviewer", "ann", {"reviewer": "bob", "active": False}),
        ("add_reviewer", "ann", {"reviewer": "bob", "role": "reviewer", "active": True}),
        ("add_reviewer", "cli", {"reviewer": "ann", "role": "admin", "active": True}),
    ]
    with pytest.raises(UnknownReviewer, match="carol"):
        store.deactivate_reviewer("carol", by="ann")


def test_duplicate_and_invalid_reviewers_are_refused(store: ReviewStore) -> None:
    store.add_reviewer("ann", role="reviewer")
    with pytest.raises(DuplicateReviewer, match="'ann' exists already"):
        store.add_reviewer("ann", role="admin")
    store.deactivate_reviewer("ann", by="cli")
    with pytest.raises(DuplicateReviewer):
        store.add_reviewer("ann", role="reviewer")
    with pytest.raises(ValueError, match="unknown role 'owner'"):
        store.add_reviewer("zed", role="owner")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        store.add_reviewer(" ", role="reviewer")
    assert [r.name for r in store.reviewers()] == ["ann"]


# ------------------------------------------------------------------------------------------ audit, banks


def test_audit_log_newest_first_and_filtered(store: ReviewStore, ann: Reviewer) -> None:
    a = _add(store, uploader="u1")
    b = _add(store, uploader="u2")
    store.apply_review(a.id, action="approve", reviewer=ann, now=T0 + timedelta(minutes=1))
    store.apply_review(b.id, action="remove", reviewer=ann, now=T0 + timedelta(minutes=3))
    store.apply_review(a.id, action="remove", reviewer=ann, now=T0 + timedelta(minutes=2))
    reviews = [r for r in store.audit_log() if r.upload_id is not None]  # add_reviewer rows carry none
    assert [(r.upload_id, r.action) for r in reviews] == [
        (b.id, "remove"),
        (a.id, "remove"),
        (a.id, "approve"),
    ]
    assert [r.action for r in store.audit_log(upload_id=a.id)] == ["remove", "approve"]
    assert [r.upload_id for r in store.audit_log(uploader_id="u2")] == [b.id]
    assert len(store.audit_log(limit=1)) == 1
    assert all(r.at.utcoffset() == timedelta(0) for r in store.audit_log())


def test_bank_entries_add_replace_remove_list(store: ReviewStore) -> None:
    new = "phash_stable/16"
    store.add_bank_entry("spam", key="k1", code=b"\x01" * 32, scheme=new, upload_id=None, added_by="ann")
    store.add_bank_entry("allow", key="k1", code=b"\x02" * 32, scheme=new, upload_id=None, added_by="ann")
    store.add_bank_entry("spam", key="k0", code=bytes(range(32)), scheme=new, upload_id="up-9", added_by=None)
    store.add_bank_entry("spam", key="k1", code=b"\x03" * 32, scheme=new, upload_id=None, added_by="bob")  # replaces
    assert store.bank_entries("spam", scheme=new) == [("k0", bytes(range(32))), ("k1", b"\x03" * 32)]
    assert store.bank_entries("allow", scheme=new) == [("k1", b"\x02" * 32)]
    assert store.remove_bank_entry("spam", "k1") is True
    assert store.remove_bank_entry("spam", "k1") is False
    assert store.bank_entries("spam", scheme=new) == [("k0", bytes(range(32)))]
    with pytest.raises(ValueError, match="unknown bank 'deny'"):
        store.bank_entries("deny", scheme=new)  # type: ignore[arg-type]


def test_bank_codes_of_another_scheme_are_kept_apart_until_rehashed(store: ReviewStore) -> None:
    old, new = "phash/16", "phash_stable/16"
    store.add_bank_entry("spam", key="a", code=b"\x01" * 32, scheme=old, upload_id="up-a", added_by="ann")
    store.add_bank_entry("spam", key="b", code=b"\x02" * 32, scheme=new, upload_id="up-b", added_by="ann")
    store.add_bank_entry("spam", key="c", code=b"\x03" * 32, scheme=None, upload_id=None, added_by="ann")
    assert store.bank_entries("spam", scheme=new) == [("b", b"\x02" * 32)]
    assert store.bank_entries("spam", scheme=old) == [("a", b"\x01" * 32)]
    assert store.foreign_bank_entries("spam", scheme=new) == [("a", "up-a", old), ("c", None, None)]
    assert store.foreign_bank_entries("allow", scheme=new) == []
    assert store.rehash_bank_entry("spam", "a", code=b"\x04" * 32, scheme=new) is True
    assert store.rehash_bank_entry("spam", "zz", code=b"\x04" * 32, scheme=new) is False
    assert store.bank_entries("spam", scheme=new) == [("a", b"\x04" * 32), ("b", b"\x02" * 32)]
    assert store.foreign_bank_entries("spam", scheme=new) == [("c", None, None)]


# ----------------------------------------------------------------------------------- opening the store


def test_reopen_keeps_data_and_unknown_schema_version_is_refused(db_url: str) -> None:
    with ReviewStore(db_url) as first:
        upload = _add(first)
    with ReviewStore(db_url) as again:
        assert again.get_upload(upload.id) == upload
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE modops_meta SET value = '999' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 999"):
        ReviewStore(db_url)


def _downgrade_to_schema_1(db_url: str) -> None:
    """Make the database look as schema version 1 wrote it: bank entries without a scheme column."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE modops_bank_entries DROP COLUMN scheme"))
        conn.execute(text("UPDATE modops_meta SET value = '1' WHERE key = 'schema_version'"))
        conn.execute(
            text(
                "INSERT INTO modops_bank_entries (bank, key, code, upload_id, added_by, added_at) "
                "VALUES ('spam', 'old', :code, 'up-old', 'ann', :at)"
            ),
            {"code": b"\x07" * 32, "at": T0.replace(tzinfo=None)},
        )
    engine.dispose()


def test_schema_1_is_migrated_at_open_and_its_bank_codes_marked_unknown(db_url: str) -> None:
    with ReviewStore(db_url) as first:
        upload = _add(first)
    _downgrade_to_schema_1(db_url)
    with ReviewStore(db_url) as migrated:
        assert migrated.get_upload(upload.id) == upload
        assert migrated.foreign_bank_entries("spam", scheme="phash_stable/16") == [("old", "up-old", None)]
        assert migrated.bank_entries("spam", scheme="phash_stable/16") == []
    engine = create_engine(db_url)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT value FROM modops_meta WHERE key = 'schema_version'")).scalar_one()
    engine.dispose()
    assert version == "2"
    with ReviewStore(db_url) as again:  # opening a migrated database again changes nothing
        assert again.foreign_bank_entries("spam", scheme="phash_stable/16") == [("old", "up-old", None)]


def test_sqlite_creates_parent_folders_and_uses_wal(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "review.db"
    with ReviewStore(f"sqlite:///{path}") as store:
        _add(store)
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unreachable_url_is_named_with_password_masked() -> None:
    with pytest.raises(StoreError) as caught:
        ReviewStore("postgresql://modops:s3cret-pw@127.0.0.1:1/review")
    message = str(caught.value)
    assert "postgresql+psycopg://modops:***@127.0.0.1:1/review" in message
    assert "s3cret-pw" not in message
    with pytest.raises(StoreError, match="cannot parse"):
        ReviewStore("not a url")


def test_in_memory_sqlite_is_one_database_shared_by_threads() -> None:
    with ReviewStore("sqlite://") as store:
        reviewer = store.add_reviewer("ann", role="reviewer")[0]
        uploads = [_add(store, at=T0 + timedelta(seconds=i)) for i in range(20)]
        errors: list[BaseException] = []

        def work(part: list[UploadRecord]) -> None:
            try:
                for upload in part:
                    store.apply_review(upload.id, action="approve", reviewer=reviewer)
                    store.queue_size()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(uploads[i::2],)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert store.queue_size() == 0
        assert len(store.audit_log(limit=100)) == 21
