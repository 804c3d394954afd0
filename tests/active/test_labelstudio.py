"""Label Studio interchange: config, import tasks, and parsing the exports back (no server, no SDK)."""

from __future__ import annotations

import copy
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from modops.active.labelstudio import (
    EXPORT_COLUMNS,
    export_csv,
    import_tasks,
    labeling_config,
    local_files_url,
    parse_export,
    parse_export_csv,
)

CLASSES = ["negative", "nudity", "promo_spam"]


def _url(image_id: str) -> str:
    return local_files_url(f"pool/{image_id}.jpg")


@pytest.fixture
def candidates() -> pd.DataFrame:
    """Retrieval output: img2 was retrieved for both categories."""
    return pd.DataFrame(
        {
            "category": ["nudity", "nudity", "promo_spam", "promo_spam"],
            "image_id": ["img1", "img2", "img2", "img3"],
            "score": [0.91, 0.80, 0.85, 0.70],
            "rank": [1, 2, 1, 2],
        }
    )


# ---------------------------------------------------------------- config


def test_labeling_config_parses_and_lists_classes() -> None:
    classes = [*CLASSES, 'ads & "links" <x>']
    root = ET.fromstring(labeling_config(classes))
    assert root.tag == "View"
    image = root.find("Image")
    assert image is not None and image.attrib == {"name": "image", "value": "$image"}
    choices = root.find("Choices")
    assert choices is not None
    assert choices.attrib == {"name": "label", "toName": "image", "choice": "single", "showInline": "true"}
    assert [c.attrib["value"] for c in choices.findall("Choice")] == classes


@pytest.mark.parametrize(("classes", "match"), [([], "empty"), (["a", "a"], "duplicate"), (["a", " "], "blank")])
def test_labeling_config_rejects_bad_classes(classes: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        labeling_config(classes)
    with pytest.raises(ValueError, match="single string"):
        labeling_config("nudity")


def test_local_files_url() -> None:
    assert local_files_url("pool/ab/x 1&2#.jpg") == "/data/local-files/?d=pool/ab/x%201%262%23.jpg"
    assert local_files_url("é.jpg", prefix="http://ls:8080/data/local-files/?d=").endswith("?d=%C3%A9.jpg")
    for bad in ("", "/abs/x.jpg", "a/../b.jpg"):
        with pytest.raises(ValueError):
            local_files_url(bad)


# ---------------------------------------------------------------- import tasks


def test_import_tasks_one_per_image_without_scores(candidates: pd.DataFrame) -> None:
    tasks = import_tasks(candidates, image_url=_url, model_version="retrieval-v1")
    json.dumps(tasks)  # plain types only
    assert [t["data"]["image_id"] for t in tasks] == ["img1", "img2", "img3"]  # by (best rank, id)
    img2 = tasks[1]
    assert img2["data"] == {
        "image": "/data/local-files/?d=pool/img2.jpg",
        "image_id": "img2",
        "categories": ["promo_spam", "nudity"],  # best retrieval score first
        "retrieval_score": 0.85,
    }
    (pred,) = img2["predictions"]
    assert pred["model_version"] == "retrieval-v1" and pred["score"] == 0.85
    assert pred["result"] == [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["promo_spam"]}}
    ]
    assert all(type(t["data"]["retrieval_score"]) is float for t in tasks)


def test_import_tasks_with_model_scores(candidates: pd.DataFrame) -> None:
    scores = pd.DataFrame(
        {
            "image_id": ["img3", "img2", "img1", "unrelated"],
            "p_negative": [0.7, 0.1, 0.2, 1.0],
            "p_nudity": [0.1, 0.3, 0.7, 0.0],
            "p_promo_spam": [0.2, 0.6, 0.1, 0.0],
        }
    )
    tasks = import_tasks(candidates, image_url=_url, model_version="m-3", scores=scores)
    json.dumps(tasks)
    got = {t["data"]["image_id"]: t["predictions"][0] for t in tasks}
    assert got["img1"]["result"][0]["value"]["choices"] == ["nudity"] and got["img1"]["score"] == 0.7
    assert got["img3"]["result"][0]["value"]["choices"] == ["negative"] and got["img3"]["score"] == 0.7
    assert got["img2"]["result"][0]["value"]["choices"] == ["promo_spam"]
    assert type(got["img2"]["score"]) is float


def test_import_tasks_rejects_bad_scores(candidates: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no row for 1"):
        import_tasks(
            candidates,
            image_url=_url,
            model_version="m",
            scores=pd.DataFrame({"image_id": ["img1", "img2"], "p_nudity": [0.5, 0.5]}),
        )
    with pytest.raises(ValueError, match="p_<class>"):
        import_tasks(candidates, image_url=_url, model_version="m", scores=pd.DataFrame({"image_id": ["img1"]}))
    with pytest.raises(ValueError, match="missing columns"):
        import_tasks(candidates.drop(columns="rank"), image_url=_url, model_version="m")
    assert import_tasks(candidates.iloc[:0], image_url=_url, model_version="m") == []


# ---------------------------------------------------------------- JSON export round trip


def _annotation(
    ann_id: int, label: str | None, *, who: object, created: str, updated: str | None = None, cancelled: bool = False
) -> dict:
    result = (
        []
        if label is None
        else [
            {
                "id": f"r{ann_id}",
                "from_name": "label",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": [label]},
                "origin": "manual",
            }
        ]
    )
    return {
        "id": ann_id,
        "completed_by": who,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": created,
        "updated_at": updated or created,
        "lead_time": 3.2,
    }


def _simulate_export(tasks: list[dict]) -> list[dict]:
    """What Label Studio exports after reviewers worked on the imported tasks."""
    exported = []
    for task_id, task in enumerate(copy.deepcopy(tasks), start=101):
        task.update(id=task_id, created_at="2026-11-01T09:00:00.000000Z", project=7)
        image_id = task["data"]["image_id"]
        if image_id == "img1":  # accepted the pre-annotation
            task["annotations"] = [_annotation(1, "nudity", who=3, created="2026-11-02T10:00:00.000000Z")]
        elif image_id == "img2":  # skipped by one reviewer, labelled, then relabelled by a second
            task["annotations"] = [
                _annotation(
                    2, None, who={"id": 4, "email": "bo@example.com"}, created="2026-11-02T10:05:00Z", cancelled=True
                ),
                _annotation(
                    4,
                    "negative",
                    who={"id": 5, "email": "cy@example.com"},
                    created="2026-11-02T12:00:00Z",
                    updated="2026-11-03T08:30:00+01:00",
                ),
                _annotation(3, "promo_spam", who=3, created="2026-11-02T10:10:00Z"),
            ]
        else:  # img3: only skipped, so no usable label
            task["annotations"] = [_annotation(5, "promo_spam", who=3, created="2026-11-02T11:00:00Z", cancelled=True)]
        exported.append(task)
    return exported


def test_tasks_round_trip_through_json_export(candidates: pd.DataFrame, tmp_path: Path) -> None:
    tasks = import_tasks(candidates, image_url=_url, model_version="retrieval-v1")
    exported = _simulate_export(tasks)
    got = parse_export(exported)
    assert tuple(got.columns) == EXPORT_COLUMNS
    assert got["image_id"].tolist() == ["img1", "img2"]
    rows = got.set_index("image_id")
    assert rows.loc["img1", "label"] == "nudity" and rows.loc["img1", "who"] == "3"
    assert rows.loc["img1", "n_annotations"] == 1
    # The relabel (updated latest, though listed before the other) wins; the cancelled one is ignored.
    assert rows.loc["img2", "label"] == "negative" and rows.loc["img2", "who"] == "cy@example.com"
    assert rows.loc["img2", "n_annotations"] == 2
    assert rows.loc["img2", "when"] == pd.Timestamp("2026-11-03T07:30:00Z")
    assert str(got["when"].dtype) == "datetime64[ns, UTC]"

    # Same answer from JSON text, bytes, a Path and a str path.
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exported), encoding="utf-8")
    for source in (json.dumps(exported), path.read_bytes(), path, str(path)):
        pd.testing.assert_frame_equal(parse_export(source), got)


def test_latest_wins_falls_back_to_created_then_list_order() -> None:
    def task(annotations: list[dict]) -> dict:
        return {"id": 1, "data": {"image_id": "x"}, "annotations": annotations}

    a = _annotation(1, "a", who=1, created="2026-01-02T00:00:00Z")
    b = _annotation(2, "b", who=1, created="2026-01-01T00:00:00Z")
    for ann in (a, b):
        ann.pop("updated_at")
    assert parse_export([task([a, b])])["label"].item() == "a"  # created_at decides
    for ann in (a, b):
        ann.pop("created_at")
    got = parse_export([task([a, b])])
    assert got["label"].item() == "b" and pd.isna(got["when"].item())  # no timestamps: list order


def test_json_export_errors() -> None:
    with pytest.raises(ValueError, match="task 42 has no image_id"):
        parse_export([{"id": 42, "data": {"image": "u"}, "annotations": []}])
    multi = _annotation(1, "a", who=1, created="2026-01-01T00:00:00Z")
    multi["result"][0]["value"]["choices"] = ["a", "b"]
    with pytest.raises(ValueError, match="several classes"):
        parse_export([{"id": 1, "data": {"image_id": "x"}, "annotations": [multi]}])
    with pytest.raises(ValueError, match="JSON list"):
        parse_export('{"id": 1}')
    with pytest.raises(ValueError, match="timestamp"):
        parse_export(
            [{"id": 1, "data": {"image_id": "x"}, "annotations": [_annotation(1, "a", who=1, created="yesterday-ish")]}]
        )
    assert parse_export([]).empty and tuple(parse_export([]).columns) == EXPORT_COLUMNS


# ---------------------------------------------------------------- JSON_MIN and CSV


def test_json_min_export() -> None:
    records = [
        {
            "image": "/data/local-files/?d=pool/img1.jpg",
            "image_id": "img1",
            "id": 101,
            "label": "nudity",
            "annotator": "al@example.com",
            "annotation_id": 1,
            "created_at": "2026-11-02T10:00:00Z",
            "updated_at": "2026-11-02T10:00:00Z",
            "lead_time": 2.0,
        },
        {
            "image_id": "img1",
            "id": 101,
            "label": "negative",
            "annotator": 9,
            "annotation_id": 2,
            "created_at": "2026-11-02T11:00:00Z",
            "updated_at": "2026-11-02T11:00:00Z",
        },
        {"image_id": "img2", "id": 102, "label": {"choices": ["unknown_class"]}, "annotation_id": 3},
        {"image_id": "img3", "id": 103, "annotation_id": 4},  # no choice
    ]
    got = parse_export(records).set_index("image_id")
    assert got.index.tolist() == ["img1", "img2"]
    assert got.loc["img1", "label"] == "negative" and got.loc["img1", "who"] == "9"
    assert got.loc["img1", "n_annotations"] == 2
    assert got.loc["img2", "label"] == "unknown_class"  # kept as is; the caller validates
    assert got.loc["img2", "who"] is None and pd.isna(got.loc["img2", "when"])
    with pytest.raises(ValueError, match="task 7"):
        parse_export([{"id": 7, "label": "x"}])


def test_csv_export_parsing(tmp_path: Path) -> None:
    text = (
        "image_id,label,annotator,created_at\n"
        "007,promo_spam,al@example.com,2026-11-02T10:00:00Z\n"
        "007,negative,bo@example.com,2026-11-02T09:00:00Z\n"
        "NA,nudity,,\n"
        "010,,al@example.com,2026-11-02T10:00:00Z\n"
    )
    got = parse_export_csv(text).set_index("image_id")
    assert got.index.tolist() == ["007", "NA"]  # ids stay strings; the unlabelled row is ignored
    assert got.loc["007", "label"] == "promo_spam" and got.loc["007", "n_annotations"] == 2
    assert got.loc["NA", "who"] is None
    path = tmp_path / "answers.csv"
    path.write_text(text, encoding="utf-8")
    pd.testing.assert_frame_equal(parse_export_csv(path), parse_export_csv(str(path)))
    with pytest.raises(ValueError, match="missing columns"):
        parse_export_csv("image_id,choice\nx,y\n")
    with pytest.raises(ValueError, match="CSV line 2 has no image_id"):
        parse_export_csv("image_id,label\n,nudity\n")
    with pytest.raises(FileNotFoundError):
        parse_export_csv(str(tmp_path / "missing.csv"))


def test_export_csv_round_trips_through_parse_export_csv(candidates: pd.DataFrame) -> None:
    text = export_csv(candidates, image_url=_url)
    frame = pd.read_csv(io.StringIO(text), dtype=str)
    assert frame.columns.tolist() == ["category", "rank", "image_id", "score", "image_url", "label"]
    assert frame["category"].tolist() == ["nudity", "nudity", "promo_spam", "promo_spam"]
    assert frame["image_url"].iloc[0] == "/data/local-files/?d=pool/img1.jpg"
    assert frame["score"].iloc[0] == "0.910000"
    assert parse_export_csv(text).empty  # nothing filled in yet
    frame["label"] = ["nudity", "", "", "negative"]
    answers = parse_export_csv(frame.to_csv(index=False))
    assert dict(zip(answers["image_id"], answers["label"], strict=True)) == {"img1": "nudity", "img3": "negative"}
