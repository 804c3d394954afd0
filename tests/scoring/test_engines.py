from __future__ import annotations

import logging
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from modops.config import ScoreConfig
from modops.data.sources import list_source
from modops.models import MemberSpec, ModelSpec, create_model
from modops.models.predictor import Cascade, SingleModel
from modops.scoring.daily import score_uploads
from modops.scoring.engines import ENGINES, create_engine
from modops.scoring.uploads import SourceReader
from tests.conftest import image_bytes

CLASSES = ("clean", "spam", "weapon")
TOL = 1e-4


def _net(seed: int, **kw) -> torch.nn.Module:  # noqa: ANN003
    torch.manual_seed(seed)
    return create_model("cnn_small", num_classes=len(CLASSES), **kw).eval()


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _single(**kw) -> SingleModel:  # noqa: ANN003
    spec = ModelSpec(classes=CLASSES, members=(MemberSpec("model", "cnn_small", 32, cbam=True),), **kw)
    return SingleModel(spec, _net(0, cbam=True, input_size=32, loss_head=8))


def _cascade(*, low: float) -> Cascade:
    spec = ModelSpec(
        classes=CLASSES,
        members=(MemberSpec("stage1", "cnn_small", 24), MemberSpec("stage2", "cnn_small", 32, cbam=True)),
        kind="cascade",
        combine={"rule": "band", "low": low, "high": 1.0, "fuse": "mean"},
    )
    return Cascade(spec, _net(1), _net(2, cbam=True, input_size=32))


def test_onnx_single_model_matches_eager(tmp_path: Path):
    eager = _single()
    engine = create_engine("onnx", eager, workdir=tmp_path, threads=1)
    assert (tmp_path / "model.onnx").is_file()
    assert engine.members[0].runner.session.get_session_options().intra_op_num_threads == 1
    for n in (5, 1):  # the graph was traced with 2 images: the batch axis is dynamic
        x = _images(n, 32, seed=n)
        want, want_emb = eager.predict_and_embed(x)
        got, got_emb = engine.predict_and_embed(x)
        assert got.probs.shape == (n, len(CLASSES)) and got_emb.shape == want_emb.shape
        np.testing.assert_allclose(got.probs, want.probs, atol=TOL)
        np.testing.assert_allclose(got_emb, want_emb, atol=TOL)
        np.testing.assert_allclose(got.loss, want.loss, atol=TOL)
        np.testing.assert_allclose(engine.predict(x).probs, want.probs, atol=TOL)
        np.testing.assert_allclose(engine.embed(x), want_emb, atol=TOL)
    # The wrapped predictor is left as it was: still torch, still its own members.
    assert eager.members[0] is not engine.members[0] and engine.members[0].net is eager.members[0].net
    assert type(eager.member).__name__ == "_Member"


def test_onnx_cascade_matches_eager_routing_and_fusion(tmp_path: Path):
    x = _images(16, 32, seed=3)
    probe = _cascade(low=1.0)
    p1 = probe.stage1.probs(x, spec=probe.spec, runtime=probe.runtime)
    top = np.sort(p1[:, 1:].max(dim=1).values.numpy())
    assert top[7] + 1e-5 < top[8], "stage-1 scores too close to split; pick another seed"
    eager = _cascade(low=float(top[7] + top[8]) / 2)  # about half the rows reach stage 2
    engine = create_engine("onnx", eager, workdir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage1.onnx", "stage2.onnx"]
    want, want_emb = eager.predict_and_embed(x)
    got, got_emb = engine.predict_and_embed(x)
    assert want.stage2.sum() == 8
    np.testing.assert_array_equal(got.stage2, want.stage2)
    np.testing.assert_allclose(got.probs, want.probs, atol=TOL)
    np.testing.assert_allclose(got_emb, want_emb, atol=TOL)
    assert got.loss is None and want.loss is None


def _uploads(root: Path) -> Path:
    root.mkdir()
    for k in range(9):
        (root / f"{k}.jpg").write_bytes(image_bytes(k, size=(30 + 7 * k, 60 - 3 * k)))
    (root / "broken.png").write_bytes(image_bytes(20, fmt="PNG")[:100])
    return root


def _score(predictor, root: Path):  # noqa: ANN001, ANN202
    uris = [item.uri for item in list_source(str(root))]
    reader = SourceReader(str(root), max_bytes=predictor.spec.decode_limits.max_bytes)
    return score_uploads(predictor, reader, uris, min_side=8, batch_size=4, embedding_dims=8)


def test_score_uploads_with_onnx_gives_the_eager_decisions(tmp_path: Path):
    root = _uploads(tmp_path / "uploads")
    first = _score(_single(), root).predictions
    # Thresholds halfway between neighbouring scores, so each category flags some uploads and not others.
    thresholds = {}
    for cat in CLASSES[1:]:
        s = np.sort(first[f"p_{cat}"].to_numpy())
        assert s[4] + 1e-5 < s[5], f"{cat} scores too close to split; pick another seed"
        thresholds[cat] = float(s[4] + s[5]) / 2
    eager = _single(thresholds=thresholds)
    want = _score(eager, root)
    got = _score(create_engine("onnx", eager, workdir=tmp_path / "onnx"), root)
    decisions = ["uri", "image_id", "flag_spam", "flag_weapon", "flagged", "category", "stage2", "width", "height"]
    assert want.predictions["flagged"].any() and not want.predictions["flagged"].all()
    assert got.predictions[decisions].equals(want.predictions[decisions])
    numeric = [c for c in want.predictions.columns if c.startswith(("p_", "emb_"))] + ["predicted_loss"]
    np.testing.assert_allclose(got.predictions[numeric], want.predictions[numeric], atol=TOL)
    assert got.quarantine.equals(want.quarantine) and got.quarantine["uri"].tolist() == ["broken.png"]


def test_eager_engine_is_the_predictor_itself():
    predictor = _single()
    assert create_engine("eager", predictor) is predictor


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown scoring engine 'tensorrt'.*\['compile', 'eager', 'onnx'\]"):
        create_engine("tensorrt", _single())
    assert {"eager", "onnx", "compile"} <= set(ENGINES)


def test_a_predictor_without_member_attributes_is_refused():
    class Listed:
        def __init__(self, inner: SingleModel) -> None:
            self.spec, self.runtime, self._members = inner.spec, inner.runtime, [inner.member]

        @property
        def members(self) -> list:
            return list(self._members)

    with pytest.raises(TypeError, match="use engine 'eager'"):
        create_engine("onnx", Listed(_single()))
    listed = Listed(_single())
    assert create_engine("onnx", listed, fallback=True) is listed


@pytest.mark.slow
def test_compile_engine_matches_eager():
    eager = _single()
    engine = create_engine("compile", eager)
    x = _images(4, 32, seed=7)
    want, want_emb = eager.predict_and_embed(x)
    got, got_emb = engine.predict_and_embed(x)
    np.testing.assert_allclose(got.probs, want.probs, atol=TOL)
    np.testing.assert_allclose(got_emb, want_emb, atol=TOL)
    np.testing.assert_allclose(got.loss, want.loss, atol=TOL)


def test_score_config_offers_exactly_the_registered_engines():
    # ScoreConfig spells the names out (loading the config must not import torch): keep them in step.
    assert set(typing.get_args(ScoreConfig.model_fields["engine"].annotation)) == set(ENGINES)


def test_an_engine_that_cannot_be_made_falls_back_to_eager_when_asked(tmp_path: Path, monkeypatch, caplog):
    import modops.scoring.engines as engines

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("Exporting the operator 'aten::magic' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(engines, "export_onnx", refuse)
    predictor = _single()
    with pytest.raises(RuntimeError, match="aten::magic"):
        create_engine("onnx", predictor, workdir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="modops.scoring.engines"):
        assert create_engine("onnx", predictor, workdir=tmp_path, fallback=True) is predictor
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "scoring engine 'onnx' could not wrap the model (RuntimeError: Exporting the operator" in record.getMessage()
    # A name that is no engine is a config error, never a fallback.
    with pytest.raises(ValueError, match="unknown scoring engine 'tensorrt'"):
        create_engine("tensorrt", predictor, fallback=True)
