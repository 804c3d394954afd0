"""Label Studio's own SDK checks modops' interchange formats (no server, no network).

``label-studio-sdk`` is a dev dependency only (it pulls OpenCV, nltk and more), so the whole
module is skipped without it. What the SDK checks:

- ``LabelInterface`` parses and validates the labelling config and every pre-annotation of an
  exported batch (``validate_prediction``: control and object names, result type, the class is
  one of the config's choices, score in [0, 1]);
- the exports are built the way Label Studio builds them: annotation results from the config's
  own ``<Choices>`` control (``ChoicesTag.label``), the annotation envelope from the SDK's
  ``AnnotationValue``, and JSON_MIN and CSV from the SDK's ``Converter`` (Label Studio's export
  code) run on the JSON export. modops must read all three into the same label events.

What the SDK cannot check: ``choice="single"`` (it accepts several classes in one result;
modops refuses them), and ``LabelInterface.validate_task`` of 2.0.19 raises ``TypeError`` on a
task that carries predictions or annotations (it calls ``validate_prediction()`` without the
prediction), so tasks are checked as data plus each prediction.
"""

from __future__ import annotations

import copy
import json
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("label_studio_sdk")

from label_studio_sdk.converter import Converter  # noqa: E402
from label_studio_sdk.label_interface import LabelInterface  # noqa: E402
from label_studio_sdk.label_interface.objects import AnnotationValue, PredictionValue, TaskValue  # noqa: E402

from modops.active.labelstudio import (  # noqa: E402
    import_tasks,
    labeling_config,
    local_files_url,
    parse_export,
    parse_export_csv,
)
from modops.data.labelstore import LabelStore  # noqa: E402
from modops.stages import labels_import_stage  # noqa: E402

#: The project's label space (params.yaml ``labels``), negative first.
CLASSES = ("clean", "promo_spam", "disgusting", "weapon")
PARAMS_YAML = "labels:\n  negative: clean\n  categories: [promo_spam, disgusting, weapon]\n"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt (the converter downloading an image, nltk fetching data) fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def interface() -> LabelInterface:
    return LabelInterface(labeling_config(CLASSES))


@pytest.fixture
def tasks() -> list[dict[str, Any]]:
    """A relabel batch as ``modops select`` writes it: candidates plus the model's probabilities."""
    rng = np.random.default_rng(0)
    ids = [f"{i:02x}{'ab' * 31}" for i in range(8)]
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=len(ids))
    scores = pd.DataFrame({"image_id": ids, **{f"p_{c}": probs[:, k] for k, c in enumerate(CLASSES)}})
    candidates = pd.DataFrame(
        {
            "category": [CLASSES[1 + i % 3] for i in range(len(ids))],
            "image_id": ids,
            "score": rng.uniform(0.2, 0.8, len(ids)),  # the selection priority
            "rank": np.arange(1, len(ids) + 1),
        }
    )
    urls = {i: local_files_url(f"data/uploads/2026-11-01/images/{i}.jpg") for i in ids}
    made = import_tasks(candidates, image_url=urls.__getitem__, model_version="modops/v3", scores=scores)
    return json.loads(json.dumps(made))  # what Label Studio reads: the JSON file


# ---------------------------------------------------------------- config and import


def test_labeling_config_is_valid_for_label_studio() -> None:
    classes = (*CLASSES, 'ads & "links" <x>')
    interface = LabelInterface(labeling_config(classes))
    interface.validate()  # schema, unique names, toName targets; raises on failure
    control = interface.get_control("label")
    assert control.tag == "Choices" and control.to_name == ["image"]
    assert list(control.labels) == list(classes)
    assert not control.is_multiple_choice
    image = interface.get_object("image")
    assert image.tag == "Image" and image.value_name == "image"
    assert not LabelInterface('<View><Choices name="label" toName="img"/></View>').is_valid  # the check can fail


def test_every_exported_task_and_prediction_passes_sdk_validation(
    interface: LabelInterface, tasks: list[dict[str, Any]]
) -> None:
    assert len(tasks) == 8
    for task in tasks:
        TaskValue.model_validate(task)  # the SDK's task model: data + predictions
        assert interface.validate_task({"data": task["data"]})  # every object's $variable is present
        (prediction,) = task["predictions"]
        PredictionValue.model_validate(prediction)
        assert interface.validate_prediction(prediction, return_errors=True) == []
        assert 0.0 <= prediction["score"] <= 1.0
    assert {t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks} <= set(CLASSES)


def test_sdk_sample_prediction_has_modops_shape(interface: LabelInterface, tasks: list[dict[str, Any]]) -> None:
    random.seed(0)  # the SDK draws the sample's class with random.choice
    sample = interface.generate_sample_prediction()
    assert sample is not None
    ours = tasks[0]["predictions"][0]
    assert set(ours) == set(sample) == {"model_version", "score", "result"}
    (theirs,), (mine,) = sample["result"], ours["result"]
    assert set(mine) == set(theirs) - {"id"}  # a result id is optional on import; Label Studio assigns one
    names = ("from_name", "to_name", "type")
    assert [mine[k] for k in names] == [theirs[k] for k in names] == ["label", "image", "choices"]
    assert set(mine["value"]) == set(theirs["value"]) == {"choices"}


# ---------------------------------------------------------------- exports back in


def _annotation(
    interface: LabelInterface, ann_id: int, label: str | None, *, who: int, at: str, cancelled: bool = False
) -> dict[str, Any]:
    """One annotation as Label Studio's JSON export writes it (result from the config's control)."""
    result = [] if label is None else [interface.get_control("label").label(label)]
    body = AnnotationValue(completed_by=who, result=result, was_cancelled=cancelled, lead_time=4.5).model_dump()
    assert interface.validate_annotation(body)
    return {"id": ann_id, **body, "created_at": at, "updated_at": at, "task": None, "project": 7}


def _json_export(interface: LabelInterface, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reviewers' work on the batch: accept, override, relabel, skip, leave untouched."""
    exported = []
    for n, task in enumerate(copy.deepcopy(tasks)):
        task_id = 101 + n
        predicted = task["predictions"][0]["result"][0]["value"]["choices"][0]
        other = CLASSES[(CLASSES.index(predicted) + 1) % len(CLASSES)]
        day = f"2026-11-02T{10 + n:02d}"
        plans = [
            [(predicted, 3, f"{day}:00:00.000000Z", False)],  # accepted the pre-annotation
            [(other, 3, f"{day}:00:00.000000Z", False)],  # overrode it
            [(None, 4, f"{day}:00:00.000000Z", True), (other, 5, f"{day}:05:00.000000Z", False)],  # skip, then label
            [(predicted, 3, f"{day}:00:00.000000Z", False), (other, 5, f"{day}:30:00.000000Z", False)],  # relabel
            [(predicted, 4, f"{day}:00:00.000000Z", True)],  # only skipped: no label
            [],  # not reached yet
        ]
        plan = plans[n % len(plans)]
        annotations = [
            _annotation(interface, 10 * task_id + j, label, who=who, at=at, cancelled=cancelled)
            for j, (label, who, at, cancelled) in enumerate(plan)
        ]
        for a in annotations:
            a["task"] = task_id
        task.update(id=task_id, project=7, annotations=annotations, created_at="2026-11-01T09:00:00.000000Z")
        exported.append(task)
    return exported


def _convert(config: str, export: Path, out: Path, fmt: str) -> Path:
    """Label Studio's own export code (the SDK's converter) turns the JSON export into ``fmt``."""
    converter = Converter(config=config, project_dir=str(export.parent), download_resources=False)
    converter.convert(str(export), str(out), fmt, is_dir=False)
    return out / ("result.csv" if fmt == "CSV" else "result.json")


@pytest.fixture
def exports(interface: LabelInterface, tasks: list[dict[str, Any]], tmp_path: Path) -> dict[str, Path]:
    """The three export files Label Studio offers, for the same reviewed batch."""
    path = tmp_path / "export" / "project-7.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_json_export(interface, tasks)), encoding="utf-8")
    config = labeling_config(CLASSES)
    return {
        "JSON": path,
        "JSON_MIN": _convert(config, path, tmp_path / "min", "JSON_MIN"),
        "CSV": _convert(config, path, tmp_path / "csv", "CSV"),
    }


def test_json_min_and_csv_from_the_sdk_converter_have_label_studio_shape(exports: dict[str, Path]) -> None:
    records = json.loads(exports["JSON_MIN"].read_text())
    assert {"image", "image_id", "label", "annotator", "annotation_id", "created_at"} <= set(records[0])
    assert all(isinstance(r["label"], str) for r in records if "label" in r)  # one choice: a plain string
    header = exports["CSV"].read_text().splitlines()[0]
    assert {'"image_id"', '"label"', '"annotator"', '"updated_at"'} <= set(header.split(","))


def test_all_three_exports_read_back_to_the_same_labels(exports: dict[str, Path], tasks: list[dict[str, Any]]) -> None:
    frames = {
        "JSON": parse_export(exports["JSON"]),
        "JSON_MIN": parse_export(exports["JSON_MIN"]),
        "CSV": parse_export_csv(exports["CSV"]),
    }
    got = frames["JSON"].set_index("image_id")
    ids = [t["data"]["image_id"] for t in tasks]
    predicted = {t["data"]["image_id"]: t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks}

    def other(i: str) -> str:
        return CLASSES[(CLASSES.index(predicted[i]) + 1) % len(CLASSES)]

    # Tasks 0 and 6 accepted, 1 and 7 overrode, 2 labelled after a skip, 3 relabelled; 4 skipped, 5 untouched.
    expected = {ids[0]: predicted[ids[0]], ids[1]: other(ids[1]), ids[2]: other(ids[2]), ids[3]: other(ids[3])}
    expected |= {ids[6]: predicted[ids[6]], ids[7]: other(ids[7])}
    assert got["label"].to_dict() == expected
    assert got.loc[ids[3], "who"] == "5" and got.loc[ids[3], "n_annotations"] == 2
    assert got.loc[ids[3], "when"] == pd.Timestamp("2026-11-02T13:30:00Z")
    pd.testing.assert_frame_equal(frames["JSON_MIN"], frames["JSON"])
    pd.testing.assert_frame_equal(frames["CSV"], frames["JSON"])


def test_label_store_gets_the_same_reviewer_events_from_each_format(exports: dict[str, Path], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_YAML, encoding="utf-8")
    events = {}
    for fmt, path in exports.items():
        store_dir = tmp_path / f"labels-{fmt}"
        result = labels_import_stage(path, store_dir, source="reviewer", round_=2, params_path=params)
        assert result["imported"] == 6, fmt
        events[fmt] = LabelStore(store_dir).events()
    assert set(events["JSON"]["source"]) == {"reviewer"} and set(events["JSON"]["round"]) == {2}
    pd.testing.assert_frame_equal(events["JSON_MIN"], events["JSON"])
    pd.testing.assert_frame_equal(events["CSV"], events["JSON"])
    # The same decisions in another format add nothing to a store that has them.
    store_dir = tmp_path / "labels-JSON"
    again = labels_import_stage(exports["CSV"], store_dir, source="reviewer", round_=2, params_path=params)
    assert again["imported"] == 0


def test_sdk_generated_complete_task_round_trips(interface: LabelInterface, tmp_path: Path) -> None:
    random.seed(1)
    sample = interface.generate_complete_sample_task(raise_on_failure=True)
    assert sample is not None
    (annotation,) = sample["annotations"]
    annotation.update(id=1, created_at="2026-11-02T10:00:00Z", updated_at="2026-11-02T10:00:00Z")
    task = {"id": 1, "data": {**sample["data"], "image_id": "sample"}, "annotations": [annotation]}
    path = tmp_path / "sample.json"
    path.write_text(json.dumps([task]), encoding="utf-8")
    chosen = annotation["result"][0]["value"]["choices"][0]
    config = labeling_config(CLASSES)
    for read in (
        parse_export(path),
        parse_export(_convert(config, path, tmp_path / "min", "JSON_MIN")),
        parse_export_csv(_convert(config, path, tmp_path / "csv", "CSV")),
    ):
        assert read[["image_id", "label", "who"]].to_dict("records") == [
            {"image_id": "sample", "label": chosen, "who": "-1"}
        ]


# ---------------------------------------------------------------- what both refuse


def test_nan_probability_is_rejected_by_the_sdk_and_never_exported(
    interface: LabelInterface, tasks: list[dict[str, Any]]
) -> None:
    bad = copy.deepcopy(tasks[0]["predictions"][0]) | {"score": float("nan")}
    errors = interface.validate_prediction(bad, return_errors=True)
    assert len(errors) == 1 and errors[0].startswith("Score must be between 0.00 and 1.00")
    candidates = pd.DataFrame({"category": ["weapon"], "image_id": ["x"], "score": [0.5], "rank": [1]})
    scores = pd.DataFrame({"image_id": ["x"], **{f"p_{c}": [0.25] for c in CLASSES}}).assign(p_weapon=np.nan)
    with pytest.raises(ValueError, match="missing probabilities"):
        import_tasks(candidates, image_url=lambda i: i, model_version="m", scores=scores)


def test_class_outside_the_config_is_rejected_by_the_sdk_and_by_the_label_store(
    interface: LabelInterface, tmp_path: Path
) -> None:
    region = {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["gore"]}}
    errors = interface.validate_prediction({"score": 0.9, "result": [region]}, return_errors=True)
    assert len(errors) == 1 and "Invalid value for control 'label'" in errors[0]
    assert not interface.validate_annotation({"completed_by": 3, "result": [region]})
    annotation = {"id": 1, "completed_by": 3, "result": [region]}
    export = [{"id": 1, "data": {"image_id": "ab" * 32}, "annotations": [annotation]}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_YAML, encoding="utf-8")
    with pytest.raises(ValueError, match="allowed labels"):
        labels_import_stage(path, tmp_path / "labels", source="reviewer", round_=1, params_path=params)
    assert LabelStore(tmp_path / "labels").events().empty


def test_several_classes_in_one_answer_are_refused_by_modops(interface: LabelInterface) -> None:
    # The SDK does not enforce choice="single"; modops' importer does.
    region = interface.get_control("label").label(["promo_spam", "weapon"])
    annotation = AnnotationValue(completed_by=3, result=[region]).model_dump()
    with pytest.raises(ValueError, match="several classes"):
        parse_export([{"id": 1, "data": {"image_id": "x"}, "annotations": [annotation]}])


def test_prediction_scores_without_model_scores_stay_in_the_unit_interval(interface: LabelInterface) -> None:
    candidates = pd.DataFrame({"category": ["weapon"], "image_id": ["x"], "score": [-0.12], "rank": [1]})
    (task,) = import_tasks(candidates, image_url=lambda i: i, model_version="retrieval")
    assert interface.validate_prediction(task["predictions"][0], return_errors=True) == []
