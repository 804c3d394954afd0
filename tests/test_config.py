from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from modops.config import ConfigError, ScoreConfig, TrainConfig, load_params, load_section, load_settings
from modops.training import TRAINERS

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_every_section():
    params = load_params(REPO / "params.yaml")
    for name in ("labels", "ingest", "validate", "cold_start", "split", "train", "evaluate", "gate"):
        load_section(params, name)


def test_unknown_key_is_rejected_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        load_section({"train": {"epoch": 3}}, "train")


def test_unknown_top_level_section(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("trian:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_params(p)


def test_invalid_value_names_the_key():
    with pytest.raises(ConfigError, match=r"train.epochs"):
        load_section({"train": {"epochs": 0}}, "train")


def test_configs_are_frozen():
    cfg = TrainConfig()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.epochs = 5  # type: ignore[misc]


def test_path_weights_need_a_path():
    with pytest.raises(ConfigError, match="weights_path"):
        load_section({"train": {"pretrained": "path"}}, "train")


@pytest.mark.parametrize(
    ("train", "match"),
    [
        ({"source_weights": {"reviewer": 0}}, "must be > 0"),
        ({"source_weights": {"reviewer": 4}, "sampling": {"priority": "loss"}}, "use one of them"),
        ({"source_weights": {"reviewers": 4}}, "unknown label source 'reviewers' \\(did you mean 'reviewer'\\?\\)"),
    ],
)
def test_source_weights_are_positive_and_not_mixed_with_loss_priority(train, match):
    with pytest.raises(ConfigError, match=match):
        load_section({"train": train}, "train")


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_settings_env_overrides_file(tmp_path):
    f = tmp_path / "modops.toml"
    f.write_text('[modops]\nmodel_name = "from-file"\ns3_endpoint_url = "http://127.0.0.1:9"\n')
    s = load_settings({"MODOPS_MODEL_NAME": "from-env"}, settings_file=f)
    assert s.model_name == "from-env"
    assert s.s3_endpoint_url == "http://127.0.0.1:9"
    assert s.resolved_tracking_uri.startswith("sqlite:///")


def test_settings_reject_unknown_file_keys(tmp_path):
    f = tmp_path / "modops.toml"
    f.write_text('[modops]\nmodel_nmae = "x"\n')
    with pytest.raises(ConfigError, match="did you mean 'model_name'"):
        load_settings({}, settings_file=f)


def test_trainer_subsections_reject_unknown_keys_with_a_suggestion():
    with pytest.raises(
        ConfigError, match=r"'train.mean_teacher': unknown key 'emadecay' \(did you mean 'ema_decay'\?\)"
    ):
        load_section({"train": {"mean_teacher": {"emadecay": 0.9}}}, "train")
    with pytest.raises(ConfigError, match=r"'train.ohem_cascade.combine': unknown key 'lo' \(did you mean 'low'\?\)"):
        load_section({"train": {"ohem_cascade": {"combine": {"lo": 0.1}}}}, "train")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_section({"train": {"mean_teacher": 3}}, "train")


def test_trainer_subsections_are_typed_and_frozen():
    cfg = load_section({"train": {"trainer": "ohem_cascade", "ohem_cascade": {"combine": {"fuse": "stage2"}}}}, "train")
    assert cfg.ohem_cascade.combine.fuse == "stage2" and cfg.mean_teacher.ema_decay == 0.99
    with pytest.raises(ValidationError, match="frozen"):
        cfg.ohem_cascade.hard_examples = 3  # type: ignore[misc]
    with pytest.raises(ConfigError, match="combine.low"):
        load_section({"train": {"ohem_cascade": {"combine": {"low": 0.9, "high": 0.1}}}}, "train")


def test_dvc_train_stage_depends_on_exactly_the_shared_keys_and_the_active_trainer():
    """A new shared train key must be declared in dvc.yaml, and inactive trainers' sections must not re-run train."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = set(stages["train"]["params"])
    shared = {
        f"train.{k}"
        for k, f in TrainConfig.model_fields.items()
        if not (isinstance(f.annotation, type) and k in TRAINERS)
    }
    # The noise check's action decides which train images are drawn: those three keys and no other.
    noise = {"noise.enabled", "noise.action", "noise.weight"}
    assert declared == {"labels", *shared, "train.${train.trainer}", *noise}
    for name in TRAINERS:
        assert name in TrainConfig.model_fields, f"trainer {name!r} needs its own train.{name} section"


def test_gate_config_evidence_defaults_are_safe():
    from modops.config import GateConfig

    cfg = GateConfig()
    assert (cfg.min_support, cfg.decide_on) == (20, "lower_bound")
    assert (cfg.bootstrap_resamples, cfg.confidence, cfg.seed) == (1000, 0.95, 0)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"min_support": -1}, "gate.min_support"),
        ({"decide_on": "mean"}, "gate.decide_on"),
        ({"bootstrap_resamples": 50}, "gate.bootstrap_resamples"),
        ({"confidence": 0.5}, "gate.confidence"),
        ({"confidence": 1.0}, "gate.confidence"),
        ({"min_suport": 5}, r"did you mean 'min_support'"),
    ],
)
def test_gate_config_rejects_bad_evidence_settings(values, match):
    with pytest.raises(ConfigError, match=match):
        load_section({"gate": values}, "gate")


def test_profiles_choose_their_gate_evidence():
    demo = load_section(load_params(REPO / "params.yaml"), "gate")
    production = load_section(load_params(REPO / "profiles/production.yaml"), "gate")
    # The demo holdout has ~40-100 positives per category: point estimates, >= 20 positives.
    assert (demo.decide_on, demo.min_support) == ("point", 20)
    assert (production.decide_on, production.min_support) == ("lower_bound", 20)


def test_score_engine_is_a_known_engine_and_threads_are_positive():
    assert (ScoreConfig().engine, ScoreConfig().engine_threads) == ("eager", None)
    assert load_section(REPO / "params.yaml", "score").engine in ("eager", "onnx", "compile")
    cfg = load_section({"score": {"engine": "onnx", "engine_threads": 2}}, "score")
    assert (cfg.engine, cfg.engine_threads) == ("onnx", 2)
    choices = r"score\.engine: Input should be 'eager', 'onnx' or 'compile' \(got 'tensorrt'\)"
    with pytest.raises(ConfigError, match=choices):
        load_section({"score": {"engine": "tensorrt"}}, "score")
    with pytest.raises(ConfigError, match=r"score\.engine_threads: Input should be greater than or equal to 1"):
        load_section({"score": {"engine_threads": 0}}, "score")
