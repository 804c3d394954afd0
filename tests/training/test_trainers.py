"""Every registered trainer learns a tiny separable problem, deterministically, from a lazy image store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from modops.config import CascadeConfig, LossPredictionConfig, SamplingConfig, SupervisedConfig
from modops.data.datasets import MemoryReader
from modops.models.loss_head import get_loss_head
from modops.models.predictor import build_predictor
from modops.scoring.batch import score_ids
from modops.training import TRAINERS, TrainData, get_trainer
from modops.training.sampling import LossMemory

TRAINER_NAMES = ("supervised", "mean_teacher", "ohem_cascade")


def _val_ap(run, classes) -> tuple[float, np.ndarray]:
    """Holdout-style AP of the kept weights on val, scored through the predictor seam."""
    spec = run.result.spec(classes, trainer=run.cfg.trainer, label_version=None)
    scores = score_ids(
        build_predictor(run.result.networks, spec),
        run.data.val_ids,
        reader=run.data.reader,
        batch_size=run.cfg.batch_size * 2,
    )
    assert scores.ok.all()
    return float(average_precision_score(np.asarray(run.data.val_y) == 1, scores.probs[:, 1])), scores.probs


def _expected_phases(run) -> list[tuple[str, int]]:
    cfg = run.cfg
    if cfg.trainer == "ohem_cascade":
        return [("stage1", e) for e in range(1, cfg.epochs + 1)] + [
            ("stage2", e) for e in range(1, cfg.ohem_cascade.stage2_epochs + 1)
        ]
    phase = "train" if cfg.trainer == "supervised" else cfg.trainer
    return [(phase, e) for e in range(1, cfg.epochs + 1)]


# --- registry ---------------------------------------------------------------------------------


def test_registry_has_every_trainer():
    assert set(TRAINER_NAMES) <= set(TRAINERS)
    for name in TRAINER_NAMES:
        assert get_trainer(name) is TRAINERS[name]


def test_unknown_trainer_lists_the_choices():
    with pytest.raises(ValueError, match="unknown trainer 'nope'") as exc:
        get_trainer("nope")
    for name in TRAINER_NAMES:
        assert name in str(exc.value)


# --- learning, result shape, history ----------------------------------------------------------


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_trainer_learns_the_problem(name, trained, tiny):
    run = trained(name)
    history = run.result.history
    assert history[-1]["val_macro_pr_auc"] >= 0.9
    ap, probs = _val_ap(run, tiny.classes)
    assert ap >= 0.9
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    for h in history:
        assert np.isfinite(h["loss"]) and np.isfinite(h["val_loss"])
        assert 0.0 <= h["val_macro_pr_auc"] <= 1.0


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_result_kind_members_and_networks(name, trained):
    run = trained(name)
    res = run.result
    if name == "ohem_cascade":
        assert res.kind == "cascade"
        assert [m.name for m in res.members] == ["stage1", "stage2"]
        assert set(res.networks) == {"stage1", "stage2"}
        default = CascadeConfig().combine.model_dump()
        assert default["low"] is None  # derived from val at training time
        assert {k: v for k, v in res.combine.items() if k != "low"} == {k: v for k, v in default.items() if k != "low"}
        assert 0.0 <= res.combine["low"] <= default["high"]
        assert res.combine["rule"] == "band"
    else:
        assert res.kind == "single"
        assert [m.name for m in res.members] == ["model"]
        assert set(res.networks) == {"model"}
        assert res.combine is None
    for m in res.members:
        assert (m.backbone, m.image_size, m.cbam) == ("cnn_small", 32, False)
    for net in res.networks.values():
        assert not net.training
        assert all(p.device.type == "cpu" for p in net.parameters())
    assert res.seconds > 0 and res.train_images_per_s > 0
    assert res.info["skipped_images"] == 0
    assert res.info["precision"] == "fp32" and res.info["device"] == "cpu"


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_history_has_one_entry_per_epoch(name, trained):
    run = trained(name)
    history = run.result.history
    assert [(h["phase"], h["epoch"]) for h in history] == _expected_phases(run)
    # best_epoch is 1-based within the last-trained member's phase, and is its best val score
    last = [h for h in history if h["phase"] == history[-1]["phase"]]
    assert 1 <= run.result.best_epoch <= len(last)
    assert last[run.result.best_epoch - 1]["val_macro_pr_auc"] == max(h["val_macro_pr_auc"] for h in last)


@pytest.mark.parametrize("name", ["supervised", "mean_teacher"])
def test_reported_val_score_matches_the_scoring_path(name, trained, tiny):
    """A single model's best-epoch val PR-AUC is what score_ids sees with the returned weights."""
    run = trained(name)
    ap, _ = _val_ap(run, tiny.classes)
    best = run.result.history[run.result.best_epoch - 1]
    assert ap == pytest.approx(best["val_macro_pr_auc"], abs=1e-6)


# --- determinism ------------------------------------------------------------------------------


def _assert_same_states(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> None:
    assert a.keys() == b.keys()
    for member in a:
        assert a[member].keys() == b[member].keys()
        for key, tensor in a[member].items():
            assert torch.equal(tensor, b[member][key]), f"{member}.{key} differs between identical runs"


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_trainer_is_deterministic(name, trained, tiny):
    first = trained(name)
    second = tiny.train(name)
    _assert_same_states(first.states, second.states)
    assert [h["loss"] for h in first.result.history] == [h["loss"] for h in second.result.history]
    assert first.result.best_epoch == second.result.best_epoch


def test_another_seed_gives_other_weights(trained, tiny):
    """Guards the determinism tests against comparing something that never changes."""
    first = trained("supervised")
    other = tiny.train("supervised", seed=first.cfg.seed + 1)
    weights = [k for k in first.states["model"] if k.endswith("weight")]
    assert any(not torch.equal(first.states["model"][k], other.states["model"][k]) for k in weights)


# --- supervised variants ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "update",
    [
        {"imbalance": "weighted_loss"},
        {"supervised": SupervisedConfig(loss="ohem", ohem_keep_fraction=0.5, ohem_warmup_fraction=0.2)},
        {"imbalance": "weighted_loss", "supervised": SupervisedConfig(loss="ohem")},
    ],
    ids=["weighted_loss", "ohem", "weighted_ohem"],
)
def test_supervised_variants_learn(update, tiny):
    run = tiny.train("supervised", **update)
    assert len(run.result.history) == run.cfg.epochs
    assert all(np.isfinite(h["loss"]) for h in run.result.history)
    assert run.result.history[-1]["val_macro_pr_auc"] >= 0.9
    ap, _ = _val_ap(run, tiny.classes)
    assert ap >= 0.9


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_loss_priority_sampling_reaches_every_trainer(name, tiny, monkeypatch):
    recorded: list[int] = []
    update = LossMemory.update

    def spy(self, index, losses):  # noqa: ANN001, ANN202
        recorded.extend(np.asarray(index).tolist())
        return update(self, index, losses)

    monkeypatch.setattr(LossMemory, "update", spy)
    run = tiny.train(name, sampling=SamplingConfig(priority="loss"))
    ap, _ = _val_ap(run, tiny.classes)
    assert ap >= 0.9
    # Every optimiser step fed its images' losses back to the sampler (stage 2 too, for the cascade).
    steps = sum(h["steps"] for h in run.result.history)
    assert len(recorded) == steps * run.cfg.batch_size


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_loss_prediction_head_trains_with_every_trainer(name, tiny):
    run = tiny.train(name, loss_prediction=LossPredictionConfig(enabled=True, hidden=16))
    ap, _ = _val_ap(run, tiny.classes)
    assert ap >= 0.9  # the head does not spoil the classifier
    first = run.result.members[0]
    assert first.loss_head == 16
    assert get_loss_head(run.result.networks[first.name]) is not None
    # Only the network that scores every upload carries one (a cascade's stage 2 does not).
    assert all(m.loss_head == 0 for m in run.result.members[1:])
    # The head was trained: its weights moved from a fresh head's with the same seed.
    fresh = tiny.train(name, loss_prediction=LossPredictionConfig(enabled=True, hidden=16), epochs=1)
    assert not torch.equal(
        run.states[first.name]["loss_head.out.weight"], fresh.states[first.name]["loss_head.out.weight"]
    )
    spec = run.result.spec(tiny.classes, trainer=name, label_version=None)
    images, _ = tiny.make_images(8, 1)
    pred, _ = build_predictor(run.result.networks, spec).predict_and_embed(images)
    assert pred.loss is not None and pred.loss.shape == (8,) and np.isfinite(pred.loss).all()


def test_head_detached_from_the_start_trains_the_same_classifier(tiny):
    # detach_after: 0 (the demo profile) trains the head on the backbone's features without
    # shaping them: the classifier's weights are those of a run without a head, bit for bit.
    plain = tiny.train("supervised", epochs=1)
    cfg = LossPredictionConfig(enabled=True, hidden=16, detach_after=0.0)
    headed = tiny.train("supervised", epochs=1, loss_prediction=cfg)
    name = plain.result.members[0].name
    assert set(headed.states[name]) - set(plain.states[name]) == {k for k in headed.states[name] if "loss_head." in k}
    for key, value in plain.states[name].items():
        assert torch.equal(value, headed.states[name][key]), key
    # A head that shapes the backbone (detach_after: 1, never detached) does change it.
    shaped = tiny.train("supervised", epochs=1, loss_prediction=cfg.model_copy(update={"detach_after": 1.0}))
    assert any(not torch.equal(v, shaped.states[name][k]) for k, v in plain.states[name].items())


# --- unreadable images ------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_corrupt_training_image_is_skipped_and_counted(name, tiny):
    data = tiny.make_data()
    images = dict(data.reader.images)
    images[data.train_ids[0]] = b"garbage"  # a positive (every 4th image is one)
    data = dataclasses.replace(data, reader=MemoryReader(images))
    # imbalance "none" draws every training image once per epoch, so the bad one is met for sure
    run = tiny.train(
        name,
        data=data,
        epochs=1,
        imbalance="none",
        ohem_cascade=CascadeConfig(stage2_epochs=1, hard_examples=16, balanced_examples=16),
    )
    assert run.result.info["skipped_images"] >= 1
    assert all(np.isfinite(h["loss"]) for h in run.result.history)
    for state in run.states.values():
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


# --- TrainData validation ---------------------------------------------------------------------


def _ids(n: int) -> list[str]:
    return [f"img{i}" for i in range(n)]


@pytest.mark.parametrize(
    ("train_n", "train_y_n", "val_n", "val_y_n", "match"),
    [
        (4, 3, 2, 2, "differ in length"),
        (4, 4, 2, 3, "differ in length"),
        (0, 0, 2, 2, "non-empty"),
        (4, 4, 0, 0, "non-empty"),
    ],
    ids=["train_mismatch", "val_mismatch", "empty_train", "empty_val"],
)
def test_traindata_rejects_bad_splits(train_n, train_y_n, val_n, val_y_n, match):
    with pytest.raises(ValueError, match=match):
        TrainData(
            MemoryReader(),
            _ids(train_n),
            np.zeros(train_y_n, dtype=np.int64),
            _ids(val_n),
            np.zeros(val_y_n, dtype=np.int64),
        )


def test_traindata_accepts_a_valid_split():
    data = TrainData(MemoryReader(), _ids(4), np.zeros(4, np.int64), _ids(2), np.zeros(2, np.int64))
    assert tuple(data.unlabeled_ids) == ()


# --- warm start (train.warm_start) ------------------------------------------------------------


def _params_of(run, states: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    """The learnable tensors of each member (batch-norm running statistics move without a step)."""
    names = {m: {n for n, _ in net.named_parameters()} for m, net in run.result.networks.items()}
    return {m: {k: v for k, v in states[m].items() if k in names[m]} for m in states}


@pytest.mark.parametrize("name", TRAINER_NAMES)
def test_a_warm_start_begins_where_the_saved_model_ended(name, tiny, trained):
    saved = trained(name)
    # At a negligible learning rate the kept weights are the ones training started from (another
    # seed than the saved run's, so a fresh start would begin elsewhere).
    still = tiny.train(name, epochs=1, lr=1e-9, seed=11)
    cfg = tiny.make_cfg(name, epochs=1, lr=1e-9, seed=11)
    warm = get_trainer(name)(tiny.make_data(), cfg=cfg, class_names=tiny.classes, init=saved.states)
    warm_states = {m: net.state_dict() for m, net in warm.networks.items()}
    for member, params in _params_of(saved, saved.states).items():
        for key, value in params.items():
            assert torch.allclose(warm_states[member][key], value, atol=1e-5), (member, key)
    # Not vacuous: the same run from scratch ends far from the saved weights.
    fresh = _params_of(still, still.states)
    far = [
        not torch.allclose(fresh[m][k], v, atol=1e-2)
        for m, p in _params_of(saved, saved.states).items()
        for k, v in p.items()
    ]
    assert any(far)


def test_a_warm_start_from_another_architecture_says_how_to_fix_it(tiny, trained):
    saved = trained("supervised")
    cfg = tiny.make_cfg("supervised", epochs=1, cbam=True)
    with pytest.raises(ValueError, match=r"do not fit this network.*warm_start\.init: none"):
        get_trainer("supervised")(tiny.make_data(), cfg=cfg, class_names=tiny.classes, init=saved.states)
    cascade = trained("ohem_cascade")
    with pytest.raises(ValueError, match=r"members \['stage1', 'stage2'\].*another trainer"):
        get_trainer("supervised")(
            tiny.make_data(), cfg=tiny.make_cfg("supervised", epochs=1), class_names=tiny.classes, init=cascade.states
        )


def test_a_warm_start_keeps_or_refreshes_the_loss_head(tiny, trained):
    from modops.training.loop import load_init_state, new_network, setup_runtime

    saved = trained("supervised").states["model"]
    head = LossPredictionConfig(enabled=True, hidden=16)
    cfg = tiny.make_cfg("supervised", loss_prediction=head)
    runtime = setup_runtime(cfg)
    net = new_network(cfg, num_classes=2, backbone="cnn_small", image_size=32, runtime=runtime)
    fresh_head = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("loss_head.")}
    # Saved without a head, wanted with one: the classifier is loaded, the head starts fresh.
    assert load_init_state(net, saved) == {"loaded": len(saved), "fresh_head": len(fresh_head)}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in saved.items())
    assert all(torch.equal(net.state_dict()[k], v) for k, v in fresh_head.items())
    # Saved with a head, wanted without: the head is dropped, the classifier loaded.
    plain_cfg = tiny.make_cfg("supervised")
    plain = new_network(plain_cfg, num_classes=2, backbone="cnn_small", image_size=32, runtime=runtime)
    with_head = {**saved, **{k: torch.zeros_like(v) for k, v in fresh_head.items()}}
    assert load_init_state(plain, with_head) == {"loaded": len(saved), "fresh_head": 0}
