"""Wiring of the moderation service from settings and params: what ``modops serve`` and
``modops reviewers`` call (no domain logic here)."""

from __future__ import annotations

from pathlib import Path

from modops.config import Settings, load_params, load_section
from modops.moderation.store import ReviewStore

__all__ = ["open_store", "build_service", "serve"]


def open_store(settings: Settings, *, db_url: str | None = None) -> ReviewStore:
    """The review store at ``db_url`` or the settings' (``MODOPS_REVIEW_DB_URL``; SQLite in the state folder)."""
    return ReviewStore(db_url or settings.resolved_review_db_url)


def build_service(
    settings: Settings,
    *,
    params_path: Path,
    labels_dir: Path | None,
    model: str | None = None,
    db_url: str | None = None,
):  # noqa: ANN201 - a ModerationService
    """The service on the registered model (``moderate.model`` unless ``model`` overrides it).

    Raises:
        ModelNotRegistered: No champion (or no version at all) to serve.
        RegistryError: The registry cannot be read.
    """
    from modops.moderation.service import ModerationService, RegistryModel
    from modops.registry.tracking import configure_mlflow

    params = load_params(params_path)
    cfg = load_section(params, "moderate")
    ingest = load_section(params, "ingest")
    configure_mlflow(settings)
    source = RegistryModel(
        settings.model_name,
        which=model or cfg.model,
        cache_dir=settings.model_cache_dir,
        reload_seconds=cfg.reload_seconds,
    )
    source.current()  # fail now, with the registry's message, rather than on the first upload
    return ModerationService(
        cfg,
        open_store(settings, db_url=db_url),
        model=source,
        images_dir=settings.moderation_dir / "images",
        labels=load_section(params, "labels"),
        labels_dir=labels_dir,
        reviewed_dir=ingest.reviewed_source,
    )


def serve(service, *, host: str, port: int, announce=print) -> None:  # noqa: ANN001
    """Run the API with uvicorn until interrupted."""
    import uvicorn

    from modops.moderation.app import create_app

    announce(f"moderation service: http://{host}:{port}  (OpenAPI: /docs, reviewer page: /review)")
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
