"""Decode limits travel in model.json and guard scoring and the served pyfunc, which reads no paths by default."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from modops.data.images import DecodeLimits, FileTooLargeError
from modops.data.store import ImageStore
from modops.models import MemberSpec, ModelSpec, create_model, load_predictor, save_members
from modops.registry.pyfunc import (
    PATH_ROOT_ENV,
    ModerationModel,
    files_frame,
    path_root_from_env,
    predict_frame,
)
from modops.scoring.batch import score_ids
from tests.conftest import image_bytes

CLASSES = ("clean", "weapon")
STRICT = DecodeLimits(max_pixels=50 * 50, max_bytes=200_000, allowed_formats=("PNG",))


def _model_dir(tmp_path):
    """A model whose model.json holds :data:`STRICT` limits and flags everything that decodes."""
    torch.manual_seed(0)
    spec = ModelSpec(CLASSES, (MemberSpec("model", "cnn_small", 32),), thresholds={"weapon": 0.0}, decode_limits=STRICT)
    save_members({"model": create_model("cnn_small", num_classes=2)}, spec, tmp_path / "model")
    return tmp_path / "model"


def test_model_json_records_the_limits_and_older_ones_get_the_defaults(tmp_path):
    d = _model_dir(tmp_path)
    recorded = json.loads((d / "model.json").read_text())["decode_limits"]
    assert recorded == {"max_pixels": 2500, "max_bytes": 200_000, "allowed_formats": ["PNG"]}
    assert load_predictor(d).preset().limits == STRICT
    older = json.loads((d / "model.json").read_text())
    del older["decode_limits"]
    (d / "model.json").write_text(json.dumps(older))
    assert load_predictor(d).preset().limits == DecodeLimits()


def test_a_recorded_limit_with_a_typo_fails_loudly(tmp_path):
    d = _model_dir(tmp_path)
    data = json.loads((d / "model.json").read_text())
    data["decode_limits"]["max_pixel"] = 1
    (d / "model.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown decode limit"):
        load_predictor(d)


def test_batch_scoring_enforces_the_models_limits(tmp_path):
    store = ImageStore(tmp_path / "store")
    ids = [
        store.put(image_bytes(0, size=(40, 30), fmt="PNG"))[0],
        store.put(image_bytes(1, size=(40, 30), fmt="JPEG"))[0],  # not an allowed format
        store.put(image_bytes(2, size=(60, 50), fmt="PNG"))[0],  # over the 2,500-pixel cap
    ]
    scores = score_ids(load_predictor(_model_dir(tmp_path)), ids, reader=store)
    assert scores.ok.tolist() == [True, False, False]
    assert "unsupported_format" in scores.errors[1] and "over_pixel_cap" in scores.errors[2]
    assert np.isnan(scores.probs[1:]).all()


def test_the_served_model_enforces_the_recorded_limits(tmp_path):
    predictor = load_predictor(_model_dir(tmp_path))
    frame = pd.DataFrame(
        {
            "image": [
                image_bytes(0, size=(40, 30), fmt="PNG"),
                base64.b64encode(image_bytes(1, size=(40, 30), fmt="JPEG")).decode(),
                image_bytes(2, size=(60, 50), fmt="PNG"),
                "A" * 300_000,  # base64 of more than max_bytes: refused before decoding
            ]
        }
    )
    out = predict_frame(predictor, frame)
    assert out.loc[0, "error"] == "" and bool(out.loc[0, "flagged"])
    assert "unsupported_format" in out.loc[1, "error"] and "over_pixel_cap" in out.loc[2, "error"]
    assert "file_too_large" in out.loc[3, "error"]
    assert not out.loc[1:, "flagged"].any()


def test_paths_are_off_unless_a_root_is_configured(tmp_path):
    predictor = load_predictor(_model_dir(tmp_path))
    (tmp_path / "a.png").write_bytes(image_bytes(0, size=(40, 30), fmt="PNG"))
    with pytest.raises(ValueError, match=PATH_ROOT_ENV):
        predict_frame(predictor, pd.DataFrame({"path": [str(tmp_path / "a.png")]}))
    # A frame that carries a path column but sends bytes in every row is fine.
    both = pd.DataFrame({"image": [image_bytes(0, size=(40, 30), fmt="PNG")], "path": [None]})
    assert predict_frame(predictor, both).loc[0, "error"] == ""


def test_a_configured_root_allows_regular_files_inside_it_only(tmp_path):
    predictor = load_predictor(_model_dir(tmp_path))
    root, outside = tmp_path / "served", tmp_path / "private"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    png = image_bytes(0, size=(40, 30), fmt="PNG")
    (root / "sub" / "a.png").write_bytes(png)
    (outside / "secret.png").write_bytes(png)
    (root / "link.png").symlink_to(outside / "secret.png")
    paths = ["sub/a.png", str(root / "sub" / "a.png"), str(outside / "secret.png"), "../private/secret.png"]
    paths += ["link.png", "sub"]
    out = predict_frame(predictor, pd.DataFrame({"path": paths}), path_root=root.resolve())
    assert out["error"].iloc[:2].tolist() == ["", ""]
    assert all("outside" in e for e in out["error"].iloc[2:5]), out["error"].tolist()
    assert "not a regular file" in out.loc[5, "error"]


def test_path_root_comes_from_the_environment_and_must_be_a_folder(tmp_path):
    assert path_root_from_env({}) is None
    assert path_root_from_env({PATH_ROOT_ENV: str(tmp_path)}) == tmp_path.resolve()
    with pytest.raises(NotADirectoryError, match=PATH_ROOT_ENV):
        path_root_from_env({PATH_ROOT_ENV: str(tmp_path / "nope")})


def test_the_pyfunc_reads_its_root_at_load(tmp_path, monkeypatch):
    d = _model_dir(tmp_path)
    (tmp_path / "x.png").write_bytes(image_bytes(0, size=(40, 30), fmt="PNG"))
    context = SimpleNamespace(artifacts={"model_dir": str(d)})
    model = ModerationModel()
    model.load_context(context)
    assert model.decode_limits == STRICT
    with pytest.raises(ValueError, match=PATH_ROOT_ENV):
        model.predict(context, pd.DataFrame({"path": ["x.png"]}))
    monkeypatch.setenv(PATH_ROOT_ENV, str(tmp_path))
    model.load_context(context)
    assert model.predict(context, pd.DataFrame({"path": ["x.png"]})).loc[0, "error"] == ""


def test_files_are_sent_as_bytes_and_size_checked_before_reading(tmp_path):
    (tmp_path / "a.png").write_bytes(image_bytes(0, size=(40, 30), fmt="PNG"))
    frame = files_frame([tmp_path / "a.png"], max_bytes=STRICT.max_bytes)
    assert base64.b64decode(frame.loc[0, "image"]) == (tmp_path / "a.png").read_bytes()
    with open(tmp_path / "big.png", "wb") as f:
        f.truncate(4 * 1024**3)  # sparse
    with pytest.raises(FileTooLargeError):
        files_frame([tmp_path / "big.png"], max_bytes=STRICT.max_bytes)
