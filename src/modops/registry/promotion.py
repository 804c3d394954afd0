"""Model registration and promotion: alias ``challenger`` for every candidate, ``champion`` on a pass.

A failed gate never touches ``champion``. Registration is idempotent: a candidate whose
weights hash is already registered reuses that version instead of adding a new one.
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from modops.models.io import ModelSpec, read_spec

__all__ = [
    "Registration",
    "champion_version",
    "download_model_dir",
    "download_uri_model_dir",
    "register_candidate",
    "CHAMPION",
    "CHALLENGER",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
WEIGHTS_TAG = "modops.weights_sha256"


@dataclass(frozen=True)
class Registration:
    """What registration did; written to ``registration.json``."""

    model_name: str
    version: str
    run_id: str
    passed: bool
    aliases: tuple[str, ...]
    reasons: tuple[str, ...]
    champion_before: str | None
    champion_after: str | None
    reused_existing_version: bool

    def to_dict(self) -> dict:
        return asdict(self)


def champion_version(name: str, *, client: MlflowClient | None = None):  # noqa: ANN201
    """The ModelVersion behind alias ``champion``, or None when there is none yet."""
    client = client or MlflowClient()
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def challenger_version(name: str, *, client: MlflowClient | None = None):  # noqa: ANN201
    """The ModelVersion behind alias ``challenger`` (the latest candidate), or None."""
    client = client or MlflowClient()
    try:
        return client.get_model_version_by_alias(name, CHALLENGER)
    except MlflowException:
        return None


def download_model_dir(name: str, version: str, dst: Path) -> Path:
    """Download a registered version and return its modops model folder (for re-scoring)."""
    return download_uri_model_dir(f"models:/{name}/{version}", dst)


def download_uri_model_dir(uri: str, dst: Path) -> Path:
    """Download a registered model by URI (``models:/NAME/3``, ``models:/NAME@champion``); its model folder."""
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    except MlflowException as exc:
        raise FileNotFoundError(f"cannot load {uri} from the registry: {exc.message}") from None
    found = sorted(Path(local).rglob("model.json"), key=lambda p: len(p.parts))
    found = [p for p in found if p.parent.name == "model_dir"] or found
    if not found:
        raise FileNotFoundError(f"{uri} has no modops model.json artifact")
    return found[0].parent


def _signature():  # noqa: ANN202
    """Either column may be given: ``image`` (base64 text or bytes) or ``path`` (a local file)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "image", required=False), ColSpec("string", "path", required=False)])
    )


def _input_example(spec: ModelSpec) -> pd.DataFrame:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (spec.image_size, spec.image_size), (200, 180, 160)).save(buf, format="PNG")
    return pd.DataFrame({"image": [base64.b64encode(buf.getvalue()).decode("ascii")]})


def _find_version(client: MlflowClient, name: str, weights_sha: str):  # noqa: ANN202
    try:
        versions = client.search_model_versions(f"name = '{name}' and tags.`{WEIGHTS_TAG}` = '{weights_sha}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def register_candidate(
    model_dir: Path,
    *,
    eval_dir: Path | None = None,
    name: str,
    thresholds: dict[str, float],
    weights_sha: str,
    passed: bool,
    reasons: tuple[str, ...],
    tags: dict[str, str],
    metrics: dict[str, float],
    run_id: str | None = None,
) -> Registration:
    """Log the candidate as a pyfunc model, register it, and move aliases.

    Args:
        model_dir: The trained model folder (``model.json`` + one safetensors file per member).
        eval_dir: The evaluation folder; its metrics, PR curves and Grad-CAM grids are logged
            as artifacts of the run (under ``evaluation/``), so the MLflow UI shows them.
        name: Registered model name.
        thresholds: Per-category thresholds chosen on val; baked into the packaged model.json.
        weights_sha: sha256 of ``model.safetensors`` (the idempotency key).
        passed: The gate's verdict; only a pass moves ``champion``.
        reasons: The gate's reasons, stored as a tag and in the result.
        tags: Extra version tags (data version, git revision, ...).
        metrics: Flat metrics to log on the run (holdout precision/recall/PR-AUC...).
        run_id: The training run to attach the model to; a new run when None or missing.

    Returns:
        The registration record.
    """
    from modops.registry.pyfunc import ModerationModel

    client = MlflowClient()
    before = champion_version(name, client=client)
    existing = _find_version(client, name, weights_sha)
    if existing is not None:
        version, run = existing.version, existing.run_id
    else:
        version, run = _log_and_register(
            model_dir,
            eval_dir=eval_dir,
            name=name,
            thresholds=thresholds,
            metrics=metrics,
            run_id=run_id,
            python_model=ModerationModel(),
        )
    all_tags = {
        **tags,
        WEIGHTS_TAG: weights_sha,
        "modops.gate": "passed" if passed else "failed",
        "modops.gate_reasons": "\n".join(reasons)[:4900],  # MLflow caps tag values at 5000 chars
    }
    for key, value in all_tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHALLENGER, version)
    if passed:
        client.set_registered_model_alias(name, CHAMPION, version)
    after = champion_version(name, client=client)
    aliases = tuple(sorted(client.get_model_version(name, version).aliases))
    return Registration(
        model_name=name,
        version=str(version),
        run_id=run,
        passed=passed,
        aliases=aliases,
        reasons=tuple(reasons),
        champion_before=str(before.version) if before else None,
        champion_after=str(after.version) if after else None,
        reused_existing_version=existing is not None,
    )


def _log_and_register(
    model_dir: Path,
    *,
    eval_dir: Path | None,
    name: str,
    thresholds: dict[str, float],
    metrics: dict[str, float],
    run_id: str | None,
    python_model,  # noqa: ANN001
) -> tuple[str, str]:
    spec = read_spec(model_dir)
    packaged = spec.with_thresholds(thresholds)
    if run_id is not None:
        try:
            MlflowClient().get_run(run_id)
        except MlflowException:
            run_id = None  # the tracking store was reset since training; start a fresh run
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id) as run:
        pkg = Path(tmp) / "model_dir"
        pkg.mkdir()
        for member in spec.members:
            shutil.copy2(model_dir / member.weights, pkg / member.weights)
        (pkg / "model.json").write_text(packaged.to_json())
        mlflow.log_metrics(metrics)
        mlflow.log_dict(thresholds, "thresholds.json")
        if eval_dir is not None:
            _log_evaluation(eval_dir)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            artifacts={"model_dir": str(pkg)},
            input_example=_input_example(packaged),
            signature=_signature(),
            pip_requirements=_pip_requirements(),
            # Ship modops' own source with the model, so any environment with the pip
            # requirements can load it without installing this repo; not the demo generator.
            code_paths=[str(_model_code(Path(tmp)))],
        )
        mv = mlflow.register_model(info.model_uri, name)
        return str(mv.version), run.info.run_id


def _log_evaluation(eval_dir: Path) -> None:
    """Evaluation outputs as run artifacts: metrics, thresholds, PR curves, Grad-CAM grids."""
    for rel in ("metrics.json", "plots", "explain"):
        path = eval_dir / rel
        if path.is_file():
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        elif path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=f"evaluation/{rel}")


def _model_code(tmp: Path) -> Path:
    """A copy of the ``modops`` package without what a served model never needs (the demo generator)."""
    src = Path(__file__).resolve().parents[1]
    dst = tmp / "code" / "modops"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "demo"))
    return dst


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{pkg}=={version(pkg)}"
        for pkg in ("torch", "torchvision", "mlflow", "safetensors", "pillow", "pandas", "numpy", "imagehash")
    ]
