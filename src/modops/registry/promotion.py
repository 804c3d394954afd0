"""Model registration and promotion: alias ``challenger`` for every candidate, ``champion`` on a pass.

A failed gate never touches ``champion``. Registration is idempotent across a crash at any
point: the version is created with its identity tag (the weights hash) in the same call, so a
retry finds it instead of adding a duplicate, and every later step (tags, description,
aliases) is safe to repeat. Every alias move is recorded in the audit trail
(:mod:`modops.registry.audit`). A registry that cannot be read raises :class:`RegistryError`:
it is never mistaken for "no champion yet".
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from modops.models.io import ModelSpec, read_spec
from modops.registry.audit import read_audit, record_event
from modops.registry.errors import ModelNotRegistered, PromotionError, RegistryError

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PromotionError",
    "Registration",
    "RegistryError",
    "challenger_version",
    "champion_version",
    "download_model_dir",
    "download_uri_model_dir",
    "promote_version",
    "register_candidate",
    "rollback_champion",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
WEIGHTS_TAG = "modops.weights_sha256"
HOLDOUT_TAG = "modops.holdout_hash"
GATE_TAG = "modops.gate"
FAILED_CHECKS_TAG = "modops.gate_failed_checks"


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


def _registry_error(action: str, exc: Exception) -> RegistryError:
    msg = getattr(exc, "message", None) or str(exc)
    return RegistryError(
        f"cannot {action} in the MLflow registry ({type(exc).__name__}: {msg[:300]}); "
        "nothing was promoted and no alias moved. Check MODOPS_TRACKING_URI and that the "
        "tracking server or database is reachable and not locked, then retry."
    )


def _alias_version(name: str, alias: str, client: MlflowClient):  # noqa: ANN202
    """The ModelVersion behind ``alias``, None when the model or the alias does not exist yet.

    Reads the registered model's alias map instead of catching "alias not found": any other
    failure (database locked, server down) must raise, not read as "no champion".
    """
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise _registry_error(f"read registered model '{name}'", exc) from exc
    except Exception as exc:  # noqa: BLE001 - a transport error is as fatal as an MLflow one
        raise _registry_error(f"read registered model '{name}'", exc) from exc
    version = (model.aliases or {}).get(alias)
    if version is None:
        return None
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:  # noqa: BLE001
        raise _registry_error(f"read {name} v{version}", exc) from exc


def champion_version(name: str, *, client: MlflowClient | None = None):  # noqa: ANN201
    """The ModelVersion behind alias ``champion``; None only when there is none yet.

    Raises:
        RegistryError: When the registry cannot be read.
    """
    return _alias_version(name, CHAMPION, client or MlflowClient())


def challenger_version(name: str, *, client: MlflowClient | None = None):  # noqa: ANN201
    """The ModelVersion behind alias ``challenger`` (the latest candidate), or None."""
    return _alias_version(name, CHALLENGER, client or MlflowClient())


def cached_model_dir(name: str, version: str, *, cache_dir: Path) -> Path:
    """A registered version's model folder, downloaded once into ``cache_dir/NAME/VERSION``.

    A version's artifacts never change, so the cache is keyed by version; the download goes to
    a temporary folder that is renamed, so a killed download is never taken for a model.
    """
    final = cache_dir / name / str(version)
    if not (final / "model.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{version}.") as tmp:
            model_dir = download_model_dir(name, str(version), Path(tmp) / "dl")
            staged = Path(tmp) / "model"
            shutil.copytree(model_dir, staged)
            shutil.rmtree(final, ignore_errors=True)
            staged.rename(final)
    return final


def champion_model_dir(name: str, *, cache_dir: Path) -> tuple[str, Path]:
    """``(version, model folder)`` of the model behind ``champion``.

    Raises:
        ModelNotRegistered: When there is no champion yet (with what to do about it).
        RegistryError: When the registry cannot be read.
    """
    champ = champion_version(name)
    if champ is None:
        raise ModelNotRegistered(
            f"registered model '{name}' has no champion yet: `modops champion` says whether a candidate was "
            "refused and why; train one with `make demo`, or promote a version with "
            '`modops promote N --reason "..."`'
        )
    return str(champ.version), cached_model_dir(name, str(champ.version), cache_dir=cache_dir)


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
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise _registry_error("look up earlier versions", exc) from exc
    return min(versions, key=lambda v: int(v.version)) if versions else None


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
    failed_checks: tuple[str, ...] = (),
    gate_record: Mapping | None = None,
    description: str = "",
    run_artifacts: Mapping[str, Path] | None = None,
) -> Registration:
    """Log the candidate as a pyfunc model, register it, and move aliases.

    Safe to retry after a crash at any point: the version is found again by its weights hash
    (written when the version is created), tags and the description are overwritten with the
    same values, and an alias that already points at the version is not moved (nor recorded)
    twice. Aliases move last, so a failure before them leaves ``champion`` where it was.

    Args:
        model_dir: The trained model folder (``model.json`` + one safetensors file per member).
        eval_dir: The evaluation folder; its metrics, PR curves and Grad-CAM grids are logged
            as artifacts of the run (under ``evaluation/``), so the MLflow UI shows them.
        name: Registered model name.
        thresholds: Per-category thresholds chosen on val; baked into the packaged model.json.
        weights_sha: sha256 of every member's weights (the idempotency key).
        passed: The gate's verdict; only a pass moves ``champion``.
        reasons: The gate's reasons, stored as a tag and in the result.
        tags: Extra version tags (data version, holdout hash, git revision, ...).
        metrics: Flat metrics to log on the run (holdout precision/recall/PR-AUC...).
        run_id: The training run to attach the model to; a new run when None or missing.
        failed_checks: The kinds of the gate's failed checks (tagged, read by ``promote``).
        gate_record: The verdict and what it compared against; logged as ``evaluation/gate.json``.
        description: The version's one-paragraph summary in the registry.
        run_artifacts: Extra files to log on the run, artifact path -> local file
            (e.g. ``lineage/params.yaml``).

    Returns:
        The registration record.

    Raises:
        RegistryError: When the registry or tracking store cannot be read or written.
    """
    try:
        return _register(
            model_dir,
            eval_dir=eval_dir,
            name=name,
            thresholds=thresholds,
            weights_sha=weights_sha,
            passed=passed,
            reasons=reasons,
            tags=tags,
            metrics=metrics,
            run_id=run_id,
            failed_checks=failed_checks,
            gate_record=gate_record,
            description=description,
            run_artifacts=run_artifacts or {},
        )
    except MlflowException as exc:
        raise _registry_error(f"register a version of '{name}'", exc) from exc


def _register(model_dir: Path, *, name: str, weights_sha: str, passed: bool, reasons, tags, **kw) -> Registration:  # noqa: ANN001, ANN003
    from modops.registry.pyfunc import ModerationModel

    client = MlflowClient()
    before = champion_version(name, client=client)
    existing = _find_version(client, name, weights_sha)
    identity = {**tags, WEIGHTS_TAG: weights_sha}
    if existing is not None:
        version, run = str(existing.version), existing.run_id
    else:
        version, run = _log_and_register(
            model_dir,
            eval_dir=kw["eval_dir"],
            name=name,
            thresholds=kw["thresholds"],
            metrics=kw["metrics"],
            run_id=kw["run_id"],
            python_model=ModerationModel(),
            tags=identity,
            run_artifacts=kw["run_artifacts"],
        )
    if kw["gate_record"] is not None:
        client.log_dict(run, dict(kw["gate_record"]), "evaluation/gate.json")
    all_tags = {
        **identity,
        GATE_TAG: "passed" if passed else "failed",
        FAILED_CHECKS_TAG: ",".join(sorted(set(kw["failed_checks"]))),
        "modops.gate_reasons": "\n".join(reasons)[:4900],  # MLflow caps tag values at 5000 chars
    }
    for key, value in all_tags.items():
        client.set_model_version_tag(name, version, key, value)
    if kw["description"]:
        client.update_model_version(name, version, description=kw["description"])
    _move_aliases(client, name, version, passed=passed, reasons=reasons, before=before)
    after = champion_version(name, client=client)
    aliases = tuple(sorted(client.get_model_version(name, version).aliases))
    return Registration(
        model_name=name,
        version=version,
        run_id=run,
        passed=passed,
        aliases=aliases,
        reasons=tuple(reasons),
        champion_before=str(before.version) if before else None,
        champion_after=str(after.version) if after else None,
        reused_existing_version=existing is not None,
    )


def _move_aliases(client: MlflowClient, name: str, version: str, *, passed: bool, reasons, before) -> None:  # noqa: ANN001
    """Point ``challenger`` (and on a pass ``champion``) at ``version``, recording each real move."""
    summary = reasons[0] if reasons else ""
    previous = challenger_version(name, client=client)
    if previous is None or str(previous.version) != version:
        client.set_registered_model_alias(name, CHALLENGER, version)
        prev = None if previous is None else str(previous.version)
        record_event(
            client,
            name,
            action="register",
            alias=CHALLENGER,
            from_version=prev,
            to_version=version,
            reason=f"new candidate v{version}",
            who="pipeline",
        )
        if not passed:
            record_event(
                client,
                name,
                action="gate_failed",
                alias=CHAMPION,
                from_version=None if before is None else str(before.version),
                to_version=version,
                reason=summary or "gate failed",
                who="gate",
            )
    if passed and (before is None or str(before.version) != version):
        client.set_registered_model_alias(name, CHAMPION, version)
        record_event(
            client,
            name,
            action="promote",
            alias=CHAMPION,
            from_version=None if before is None else str(before.version),
            to_version=version,
            reason=summary or "gate passed",
            who="gate",
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
    tags: dict[str, str],
    run_artifacts: Mapping[str, Path],
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
        for artifact_path, local in run_artifacts.items():
            folder, _, fname = artifact_path.rpartition("/")
            staged = Path(tmp) / "extra" / artifact_path
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, staged)
            mlflow.log_artifact(str(staged), artifact_path=folder or None)
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
        # The identity tags are written with the version itself: a crash right after this
        # call cannot leave a version that a retry would not find (no duplicate).
        mv = mlflow.register_model(info.model_uri, name, tags=tags)
        return str(mv.version), run.info.run_id


def latest_version(name: str, *, client: MlflowClient | None = None) -> str | None:
    """The newest registered version of ``name`` (whatever its gate said), or None when there is none."""
    client = client or MlflowClient()
    try:
        versions = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
    except MlflowException as exc:
        raise _registry_error(f"list the versions of '{name}'", exc) from exc
    return str(max(versions)) if versions else None


def previous_champion(name: str, current: str, *, client: MlflowClient) -> str | None:
    """The version ``champion`` pointed at before it last moved to ``current``.

    Read from the audit trail; without a trail entry, the newest earlier version that passed
    its gate.
    """
    for event in read_audit(client, name):
        if event.alias == CHAMPION and event.to_version == current and event.action != "gate_failed":
            if event.from_version is not None:
                return event.from_version
            break
    passed = [
        int(v.version)
        for v in client.search_model_versions(f"name = '{name}'")
        if int(v.version) < int(current) and v.tags.get(GATE_TAG) == "passed"
    ]
    return str(max(passed)) if passed else None


def promote_version(
    name: str,
    version: str,
    *,
    reason: str,
    force: bool = False,
    rebaseline: bool = False,
    client: MlflowClient | None = None,
) -> dict:
    """Move ``champion`` to ``version`` by hand, with a recorded reason.

    A version that failed its gate is refused unless ``force`` (the override is recorded).
    ``rebaseline`` accepts a version whose only failed check was being judged on another
    holdout than the champion: the new holdout becomes the baseline, and the move is recorded
    as ``rebaseline``.

    Returns:
        ``{"model", "from_version", "to_version", "action", "reason", "who"}``.

    Raises:
        PromotionError: The version does not exist, is champion already, or failed its gate.
        RegistryError: The registry cannot be read or written.
    """
    client = client or MlflowClient()
    try:
        target = _existing_version(client, name, version)
        before = champion_version(name, client=client)
        if before is not None and str(before.version) == str(version):
            raise PromotionError(f"{name} v{version} is the champion already")
        action = _promotion_action(target, force=force, rebaseline=rebaseline)
        note = " (gate override: --force)" if force and target.tags.get(GATE_TAG) == "failed" else ""
        client.set_registered_model_alias(name, CHAMPION, str(version))
        event = record_event(
            client,
            name,
            action=action,
            alias=CHAMPION,
            from_version=None if before is None else str(before.version),
            to_version=str(version),
            reason=reason + note,
        )
    except MlflowException as exc:
        raise _registry_error(f"promote {name} v{version}", exc) from exc
    return {"model": name, **event.to_dict()}


def _existing_version(client: MlflowClient, name: str, version: str):  # noqa: ANN202
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise PromotionError(f"{name} has no version {version!r}; `modops champion` lists the versions") from None
        raise


def _promotion_action(target, *, force: bool, rebaseline: bool) -> str:  # noqa: ANN001
    if target.tags.get(GATE_TAG) != "failed":
        return "rebaseline" if rebaseline else "promote"
    failed = {c for c in target.tags.get(FAILED_CHECKS_TAG, "").split(",") if c}
    if rebaseline and failed == {"same_holdout"}:
        return "rebaseline"
    if force:
        return "rebaseline" if rebaseline else "promote"
    why = target.tags.get("modops.gate_reasons", "").splitlines()
    hint = (
        "it failed only because it was judged on another holdout: add --rebaseline to make that holdout the baseline"
        if failed == {"same_holdout"}
        else "add --force to override the gate (recorded in the audit trail)"
    )
    raise PromotionError(f"v{target.version} failed its gate ({'; '.join(why[:3]) or 'no reasons recorded'}); {hint}")


def rollback_champion(name: str, *, reason: str, to: str | None = None, client: MlflowClient | None = None) -> dict:
    """Move ``champion`` back: to ``to``, or to the version it pointed at before its last move.

    Returns:
        The recorded event as a dict, with ``model``.

    Raises:
        PromotionError: There is no champion, or no earlier one to go back to.
        RegistryError: The registry cannot be read or written.
    """
    client = client or MlflowClient()
    try:
        current = champion_version(name, client=client)
        if current is None:
            raise PromotionError(f"{name} has no champion to roll back")
        target = to or previous_champion(name, str(current.version), client=client)
        if target is None:
            raise PromotionError(f"no earlier champion of {name} than v{current.version}; name one with --to VERSION")
        _existing_version(client, name, target)
        if str(target) == str(current.version):
            raise PromotionError(f"v{target} is the champion already")
        client.set_registered_model_alias(name, CHAMPION, str(target))
        event = record_event(
            client,
            name,
            action="rollback",
            alias=CHAMPION,
            from_version=str(current.version),
            to_version=str(target),
            reason=reason,
        )
    except MlflowException as exc:
        raise _registry_error(f"roll back {name}", exc) from exc
    return {"model": name, **event.to_dict()}


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
