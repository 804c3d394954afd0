"""Typed, frozen configuration: one model per ``params.yaml`` section, plus runtime settings.

``params.yaml`` holds one top-level key per DVC stage (``ingest``, ``validate``, ``split``,
``train``, ``evaluate``, ``gate``) and one shared key, ``labels``. Each section loads into a
frozen pydantic model that rejects unknown keys with a message saying how to fix them.

Runtime *settings* (where state lives, the MLflow tracking URI, the S3 endpoint) are not
params: they describe the deployment, not the experiment, so they come from the environment
(``MODOPS_*``) or a TOML settings file, and never change a DVC stage's outputs.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "ConfigError",
    "OFFLINE_ENV",
    "LabelsConfig",
    "IngestConfig",
    "ValidateConfig",
    "SplitConfig",
    "TrainConfig",
    "EvaluateConfig",
    "GateConfig",
    "Settings",
    "load_params",
    "load_section",
    "load_settings",
]


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelsConfig(_Section):
    """The label space shared by every stage.

    Attributes:
        negative: The label of acceptable content.
        categories: Violating categories, each scored one-vs-rest by the model.
    """

    negative: str = "clean"
    categories: tuple[str, ...] = ("promo_spam", "disgusting", "weapon")

    @model_validator(mode="after")
    def _distinct(self) -> LabelsConfig:
        names = (self.negative, *self.categories)
        if len(set(names)) != len(names):
            raise ValueError(f"labels must be distinct, got {list(names)}")
        if not self.categories:
            raise ValueError("labels.categories needs at least one violating category")
        return self

    @property
    def all(self) -> tuple[str, ...]:
        """Every label, negative first; the index is the model's class index."""
        return (self.negative, *self.categories)


class IngestConfig(_Section):
    """Ingestion limits; files outside them are quarantined with a reason."""

    source: str = "data/raw"
    labels_file: str = "labels.csv"
    max_pixels: int = Field(default=40_000_000, gt=0)
    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    min_side: int = Field(default=8, gt=0)
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
    workers: int = Field(default=0, ge=0, description="0 = one per CPU core")


class ValidateConfig(_Section):
    """Bounds for the Great Expectations suite over the manifest."""

    min_width: int = Field(default=8, gt=0)
    max_width: int = Field(default=10_000, gt=0)
    min_height: int = Field(default=8, gt=0)
    max_height: int = Field(default=10_000, gt=0)
    min_rows: int = Field(default=1, ge=0)
    min_count_per_class: int = Field(default=1, ge=0)
    max_class_fraction: float = Field(default=1.0, gt=0, le=1)


class SplitConfig(_Section):
    """Stratified, duplicate-aware splitting with a frozen holdout."""

    val_fraction: float = Field(default=0.15, gt=0, lt=1)
    holdout_fraction: float = Field(default=0.15, gt=0, lt=1)
    near_dup_max_distance: int = Field(default=4, ge=0, le=64)
    seed: int = 42

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.val_fraction + self.holdout_fraction >= 0.9:
            raise ValueError("split.val_fraction + split.holdout_fraction must be < 0.9")
        return self


class TrainConfig(_Section):
    """Training of one candidate model; ``trainer`` and ``backbone`` are registry names."""

    trainer: str = "supervised"
    backbone: str = "mobilenet_v2"
    pretrained: Literal["none", "imagenet", "path"] = "none"
    weights_path: str | None = None
    image_size: int = Field(default=96, ge=32, le=1024)
    epochs: int = Field(default=3, ge=1)
    samples_per_epoch: int = Field(default=0, ge=0, description="0 = the whole train split")
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    imbalance: Literal["balanced_sampler", "weighted_loss", "none"] = "balanced_sampler"
    max_positive_weight: float = Field(default=20.0, ge=1)
    seed: int = 0
    num_threads: int = Field(default=0, ge=0, description="0 = torch's default")

    @model_validator(mode="after")
    def _weights(self) -> TrainConfig:
        if self.pretrained == "path" and not self.weights_path:
            raise ValueError("train.pretrained is 'path' but train.weights_path is empty")
        return self


class EvaluateConfig(_Section):
    """Holdout evaluation; thresholds are chosen on val to meet ``target_precision``."""

    target_precision: float = Field(default=0.95, gt=0, le=1)
    batch_size: int = Field(default=256, ge=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)


class GateConfig(_Section):
    """Promotion floors; a candidate must meet every floor for every category."""

    min_precision: float = Field(default=0.95, ge=0, le=1)
    min_recall: float = Field(default=0.94, ge=0, le=1)
    min_pr_auc: float = Field(default=0.0, ge=0, le=1)
    max_regression: float = Field(default=0.02, ge=0, le=1)
    regression_metric: Literal["pr_auc", "recall", "f1"] = "pr_auc"


_SECTIONS: dict[str, type[_Section]] = {
    "labels": LabelsConfig,
    "ingest": IngestConfig,
    "validate": ValidateConfig,
    "split": SplitConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "gate": GateConfig,
}

S = TypeVar("S", bound=_Section)


def load_params(path: str | Path) -> dict[str, Any]:
    """Read ``params.yaml`` as a plain mapping, with a clear error when it is malformed."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"params file not found: {p}. Pass --params PATH or run from the repo root.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must be a mapping of stage names to sections, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(_unknown_message(p.name, "top level", unknown, list(_SECTIONS)))
    return data


def load_section(params: dict[str, Any] | str | Path, name: str) -> Any:
    """Load one section of ``params.yaml`` into its frozen config model.

    Args:
        params: The parsed params mapping, or the path of ``params.yaml``.
        name: A section name such as ``"train"``.

    Returns:
        The frozen config; missing keys take the documented defaults.

    Raises:
        ConfigError: On unknown keys (with a suggestion) or invalid values.
    """
    if name not in _SECTIONS:
        raise ConfigError(_unknown_message("params", "section", [name], list(_SECTIONS)))
    data = params if isinstance(params, dict) else load_params(params)
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params section '{name}' must be a mapping, got {type(raw).__name__}")
    return parse_section(_SECTIONS[name], raw, name=name)


def parse_section(model: type[S], raw: dict[str, Any], *, name: str) -> S:
    """Validate ``raw`` against ``model``, turning pydantic errors into a fix-it message."""
    allowed = list(model.model_fields)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(_unknown_message(f"params section '{name}'", "key", unknown, allowed))
    try:
        return model(**raw)
    except ValidationError as exc:
        lines = [f"params section '{name}' is invalid:"]
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(section)"
            lines.append(f"  - {name}.{loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def _unknown_message(where: str, what: str, unknown: list[str], allowed: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        parts.append(f"'{key}'{hint}")
    return f"{where}: unknown {what} {', '.join(parts)}. Allowed: {', '.join(sorted(allowed))}. Remove or rename it."


class Settings(_Section):
    """Deployment settings, read from ``MODOPS_*`` variables or a TOML settings file.

    Attributes:
        state_dir: Folder for runtime state (Airflow home, MLflow database and artifacts).
        tracking_uri: MLflow tracking URI; defaults to SQLite inside ``state_dir``.
        artifact_root: Where MLflow stores artifacts; a local folder or ``s3://`` URI.
        s3_endpoint_url: Endpoint for S3-compatible storage (MinIO, moto); None = AWS.
        model_name: Registered model name in the MLflow registry.
        experiment: MLflow experiment name.
    """

    state_dir: Path = Path(".modops")
    tracking_uri: str | None = None
    artifact_root: str | None = None
    s3_endpoint_url: str | None = None
    model_name: str = "modops-moderation"
    experiment: str = "modops"

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.state_dir / 'mlflow.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> str:
        if self.artifact_root:
            return self.artifact_root
        return (self.state_dir / "mlartifacts").resolve().as_uri()

    @property
    def airflow_home(self) -> Path:
        return (self.state_dir / "airflow").resolve()


#: Environment that keeps the tools modops drives offline and quiet (no network here, and
#: no telemetry in production either). Used for our own process and for subprocesses.
OFFLINE_ENV: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # mlflow/environment_variables.py
    "DO_NOT_TRACK": "true",  # honoured by mlflow/telemetry/utils.py and other tools
    "DVC_NO_ANALYTICS": "true",  # dvc/env.py, dvc/analytics.py
    "GX_ANALYTICS_ENABLED": "False",  # great_expectations (inert in 1.24, states intent)
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

_ENV_PREFIX = "MODOPS_"


def load_settings(env: dict[str, str] | None = None, *, settings_file: str | Path | None = None) -> Settings:
    """Build :class:`Settings`: file values first, then ``MODOPS_*`` environment variables.

    Args:
        env: Environment to read (defaults to ``os.environ``).
        settings_file: TOML file with a ``[modops]`` table; defaults to ``$MODOPS_SETTINGS_FILE``
            or ``modops.toml`` in the working directory when that exists.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    path = settings_file or env.get(f"{_ENV_PREFIX}SETTINGS_FILE")
    if path is None and Path("modops.toml").is_file():
        path = "modops.toml"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"settings file not found: {p} (from MODOPS_SETTINGS_FILE or argument)")
        try:
            values.update(tomllib.loads(p.read_text()).get("modops", {}))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"settings file {p} is not valid TOML: {exc}") from exc
    for field in Settings.model_fields:
        key = f"{_ENV_PREFIX}{field.upper()}"
        if env.get(key):
            values[field] = env[key]
    return parse_section(Settings, values, name="settings")
