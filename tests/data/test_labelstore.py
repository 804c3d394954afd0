"""The append-only label store: rebuilding history, ordering, versions, idempotence, validation."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from modops.data.labelstore import (
    EVENT_COLUMNS,
    SNAPSHOT_COLUMNS,
    BatchReadError,
    LabelStore,
    canonical_event_id,
    events_from_frame,
)


def iid(n: int) -> str:
    """A valid, distinct image id per ``n``."""
    return hashlib.sha256(str(n).encode()).hexdigest()


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


T0, T1, T2 = ts("2026-11-20T09:00:00"), ts("2026-11-21T09:00:00"), ts("2026-11-22T09:00:00")
A, B, C = iid(1), iid(2), iid(3)


def uploads() -> pd.DataFrame:
    return events_from_frame(
        pd.DataFrame({"image_id": [A, B, C], "label": ["clean", "weapon", "promo_spam"]}),
        source="upload",
        who="labels.csv",
        when=T0,
    )


def reviewed(
    image_ids: list[str], labels: list[str | None], *, who: str, when: pd.Timestamp, round: int = 0
) -> pd.DataFrame:
    """Reviewer events for ``image_ids``."""
    frame = pd.DataFrame({"image_id": image_ids, "label": pd.Series(labels, dtype=object)})
    return events_from_frame(frame, source="reviewer", who=who, when=when, round=round)


def labelled(snap: pd.DataFrame) -> dict[str, str]:
    return dict(zip(snap["image_id"], snap["label"], strict=True))


@pytest.fixture
def history(tmp_path: Path) -> LabelStore:
    """Uploads at T0; a reviewer relabels B at T1 and retracts C at T2 (round 1)."""
    store = LabelStore(tmp_path / "labels")
    store.write_batch(uploads(), name="upload")
    store.append(reviewed([B], ["clean"], who="ana", when=T1, round=1), source_name="reviewer")
    store.append(reviewed([C], [None], who="bo", when=T2, round=1), source_name="reviewer")
    return store


def test_snapshot_rebuilds_every_moment(history: LabelStore) -> None:
    assert history.snapshot(as_of=T0 - pd.Timedelta("1s")).empty
    assert labelled(history.snapshot(as_of=T0)) == {A: "clean", B: "weapon", C: "promo_spam"}
    assert labelled(history.snapshot(as_of=T1)) == {A: "clean", B: "clean", C: "promo_spam"}
    assert labelled(history.snapshot(as_of=T2)) == {A: "clean", B: "clean"}
    now = history.snapshot()
    assert labelled(now) == {A: "clean", B: "clean"}
    assert list(now.columns) == list(SNAPSHOT_COLUMNS)
    assert now["image_id"].is_monotonic_increasing
    assert now.set_index("image_id").loc[B, ["source", "who", "round"]].tolist() == ["reviewer", "ana", 1]
    # as_of in another offset means the same instant.
    elsewhere = T1.tz_convert("America/New_York")
    assert labelled(history.snapshot(as_of=elsewhere)) == labelled(history.snapshot(as_of=T1))


def test_events_order_dtypes_and_batch_names(history: LabelStore) -> None:
    ev = history.events()
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert len(ev) == 5 and ev["when"].is_monotonic_increasing
    assert str(ev["when"].dtype) == "datetime64[ns, UTC]" and ev["round"].dtype == "int64"
    assert all(ev[c].dtype == object for c in ("event_id", "image_id", "label", "source", "who", "batch"))
    assert ev["label"].tolist()[-1] is None
    names = [b.name for b in history.batches()]
    assert names == sorted(names) and names[-1] == "upload"
    assert all(re.fullmatch(r"reviewer-\d{8}T\d{6}Z-[0-9a-f]{8}", n) for n in names[:-1])
    assert names[1].startswith("reviewer-20261122T090000Z-")
    assert len(history.events(as_of=T1)) == 4


def test_equal_timestamps_resolved_by_batch_name_then_row_order(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    store.write_batch(reviewed([A], ["weapon"], who="x", when=T1), name="b-second")
    store.write_batch(reviewed([A], ["clean"], who="y", when=T1), name="a-first")
    assert labelled(store.snapshot()) == {A: "weapon"}  # "b-second" sorts after "a-first"

    # Inside one batch, the stored row order decides; the writer's sort makes that order deterministic.
    both = pd.concat(
        [
            events_from_frame(pd.DataFrame({"image_id": [B], "label": [lab]}), source="seed", who=w, when=T0)
            for lab, w in (("clean", "p"), ("weapon", "q"))
        ]
    )
    store.write_batch(both, name="seed")
    stored = pd.read_parquet(tmp_path / "seed.parquet")
    assert stored["event_id"].is_monotonic_increasing  # same when/image/source: event_id breaks the tie
    assert store.snapshot().set_index("image_id").loc[B, "label"] == stored["label"].iloc[-1]


def test_version_depends_on_events_not_batches(tmp_path: Path) -> None:
    one = LabelStore(tmp_path / "one")
    one.write_batch(uploads(), name="upload")
    v1 = one.version()
    assert re.fullmatch(r"lv-[0-9a-f]{16}", v1.id)
    assert (v1.n_events, v1.n_labelled, v1.as_of) == (3, 3, T0)
    assert v1.counts == {"clean": 1, "promo_spam": 1, "weapon": 1} and list(v1.counts) == sorted(v1.counts)
    assert json.loads(json.dumps(v1.to_dict())) == v1.to_dict()

    two = LabelStore(tmp_path / "two")
    ev = one.events()  # the read-side frame (with its batch column) can be re-written as is
    two.write_batch(ev.iloc[[2]], name="aa")  # reorders the events: the id must not care
    two.write_batch(ev.iloc[[0, 1]], name="zz")
    two.write_batch(ev.iloc[[0]], name="dup")  # a repeated event is counted once
    assert two.version() == v1

    one.append(reviewed([iid(9)], ["clean"], who="a", when=T1), source_name="reviewer")
    v2 = one.version()
    assert v2.id != v1.id and v2.n_events == 4 and v2.counts["clean"] == 2
    assert one.version(as_of=T0) == v1


def test_write_batch_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    events = uploads()
    first = store.write_batch(events, name="one")
    store.write_batch(events.iloc[::-1], name="two")
    assert first.path.read_bytes() == (tmp_path / "two.parquet").read_bytes()
    before = first.path.stat().st_mtime_ns
    again = store.write_batch(events.sample(frac=1, random_state=3), name="one")  # same events: a no-op
    assert again == first and first.path.stat().st_mtime_ns == before
    assert [b.sha256 for b in store.batches()] == [first.sha256, first.sha256]


def test_replace_needed_to_overwrite_different_content(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    store.write_batch(uploads(), name="upload")
    changed = uploads().iloc[:2]
    with pytest.raises(FileExistsError, match="append-only.*replace=True"):
        store.write_batch(changed, name="upload")
    assert store.version().n_events == 3
    store.write_batch(changed, name="upload", replace=True)
    assert store.version().n_events == 2 and store.batches()[0].n_events == 2


def test_append_is_idempotent(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    batch = store.append(reviewed([A, B], ["clean", None], who="ana", when=T1), source_name="reviewer")
    assert batch is not None and batch.n_events == 2
    files = sorted(tmp_path.iterdir())
    assert store.append(reviewed([A, B], ["clean", None], who="ana", when=T1), source_name="reviewer") is None
    # Re-importing the same decisions later (fresh timestamps) adds nothing either.
    assert store.append(reviewed([A, B], ["clean", None], who="ana", when=T2), source_name="reviewer") is None
    assert sorted(tmp_path.iterdir()) == files
    # Only the changed decision is new.
    new = store.append(reviewed([A, B], ["weapon", None], who="ana", when=T2), source_name="reviewer")
    assert new is not None and new.n_events == 1
    assert labelled(store.snapshot()) == {A: "weapon"}


def test_sources_filter(history: LabelStore) -> None:
    assert labelled(history.snapshot(sources=["upload"])) == {A: "clean", B: "weapon", C: "promo_spam"}
    assert labelled(history.snapshot(sources=["reviewer"])) == {B: "clean"}
    assert history.snapshot(sources=[]).empty
    with pytest.raises(ValueError, match="unknown sources"):
        history.snapshot(sources=["oracle"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_id": "ABC"}, "bad image_id.*sha256"),
        ({"source": "oracle"}, "bad source.*upload"),
        ({"when": pd.Timestamp("2026-11-20")}, "naive"),
        ({"when": "2026-11-20T09:00:00"}, "bad when.*tz-aware"),
        ({"round": -1}, "bad round.*>= 0"),
        ({"who": " "}, "bad who"),
        ({"label": "nsfw"}, "allowed labels"),
        ({"event_id": "0" * 64}, "bad event_id"),
    ],
)
def test_validation_errors(tmp_path: Path, change: dict, message: str) -> None:
    events = uploads()
    for col, value in change.items():
        events[col] = value
    with pytest.raises(ValueError, match=message):
        LabelStore(tmp_path).write_batch(events, name="upload", allowed_labels=["clean", "weapon", "promo_spam"])
    assert not list(tmp_path.iterdir())


def test_validation_of_columns_names_and_as_of(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    with pytest.raises(ValueError, match=r"missing columns \['who'\]"):
        store.write_batch(uploads().drop(columns="who"), name="upload")
    with pytest.raises(ValueError, match="bad batch name"):
        store.write_batch(uploads(), name="../escape")
    with pytest.raises(ValueError, match="as_of.*timezone"):
        store.events(as_of=pd.Timestamp("2026-11-20"))
    with pytest.raises(ValueError, match="naive"):
        events_from_frame(pd.DataFrame({"image_id": [A], "label": ["x"]}), source="seed", who="s", when=pd.Timestamp(0))


def test_unreadable_batch_is_an_error_naming_it(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    store.write_batch(uploads(), name="upload")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    (tmp_path / ".upload.parquet.x.tmp").write_bytes(b"half written")  # an in-flight temp file is ignored
    for read in (store.events, store.snapshot, store.version, store.batches):
        with pytest.raises(BatchReadError, match="broken.parquet"):
            read()


def test_empty_store(tmp_path: Path) -> None:
    for root in (tmp_path / "missing", tmp_path):
        store = LabelStore(root)
        ev = store.events()
        assert list(ev.columns) == list(EVENT_COLUMNS) and ev.empty
        assert str(ev["when"].dtype) == "datetime64[ns, UTC]" and ev["round"].dtype == "int64"
        assert list(store.snapshot().columns) == list(SNAPSHOT_COLUMNS)
        v = store.version()
        assert (v.n_events, v.n_labelled, v.as_of, v.counts) == (0, 0, None, {})
        assert store.batches() == []
    assert not (tmp_path / "missing").exists()


def test_events_from_frame_columns_and_event_ids() -> None:
    frame = pd.DataFrame(
        {
            "image_id": [A, B],
            "label": ["clean", float("nan")],
            "reviewer": ["ana", "bo"],
            "at": pd.Series([pd.Timestamp("2026-11-20T10:00:00+01:00"), T0], dtype=object),  # mixed offsets
            "r": [2, 3],
        }
    )
    ev = events_from_frame(frame, source="reviewer", who="reviewer", when="at", round="r")
    assert ev["who"].tolist() == ["ana", "bo"] and ev["label"].tolist() == ["clean", None]
    assert ev["when"].tolist() == [T0, T0] and ev["round"].tolist() == [2, 3]
    assert ev["event_id"].iloc[0] == canonical_event_id(
        A, "clean", source="reviewer", who="ana", when="2026-11-20T09:00:00Z", round=2
    )


def test_a_relabel_round_records_the_model_that_selected_it(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "labels")
    assert store.rounds() == {}
    meta = {
        "model_name": "m",
        "model_version": "3",
        "day": "2026-12-02",
        "batch": "relabel/day=2026-12-02/model_version=3",
    }
    path = store.record_round(1, meta)
    assert path == tmp_path / "labels" / "rounds" / "round-000001.json"
    assert store.rounds() == {1: {"round": 1, **meta}}
    assert store.batches() == []  # a record is not a label batch
    store.record_round(1, {**meta, "day": "2026-12-03"})  # same model: re-recorded (idempotent re-import)
    with pytest.raises(ValueError, match=r"round 1 is already recorded.*model_version.*start a new round"):
        store.record_round(1, {**meta, "model_version": "4"})
    for bad in (0, -1, True, "1"):
        with pytest.raises(ValueError, match="integer >= 1"):
            store.record_round(bad, meta)  # type: ignore[arg-type]
    (path.parent / "round-000002.json").write_text("{not json")
    with pytest.raises(BatchReadError, match=r"round-000002\.json.*names the model"):
        store.rounds()
