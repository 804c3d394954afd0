"""The moderation service's HTTP API (FastAPI): uploads, public reads, the reviewers' API and page.

Public:
- ``POST /v1/uploads`` (multipart: ``image``, ``uploader_id``, ``business_category``) -> 201 with
  ``id``, ``decision``, ``reasons``, ``scores``, ``model_version``; a file that is not an image the
  service decodes gets 413/415/422 with ``reason`` and ``detail``, never a 500.
- ``GET /v1/uploads/{id}`` and ``/v1/uploads/{id}/image``: only what is visible (``allowed``);
  pending, blocked, removed and discarded uploads answer 404 exactly like unknown ids, so a public
  read cannot even tell that hidden content exists.

Reviewers (``Authorization: Bearer TOKEN`` from ``modops reviewers add``; the page uses a cookie
holding the same token): ``/v1/review/...`` lists the queue, shows any upload with its image and
Grad-CAM overlay, approves, removes or restores (role ``reviewer`` or ``admin``) and closes
profiles and reads the audit trail (``admin``). No credentials: 401; the wrong role: 403; and
nothing changes.

The OpenAPI spec is served at ``/openapi.json`` (docs at ``/docs``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from modops.moderation.service import ModerationService, UploadRejected
from modops.moderation.store import InvalidTransition, Reviewer, UnknownUpload, UploadRecord

__all__ = ["create_app", "COOKIE"]

#: The reviewer page's session cookie (holds the reviewer's API token; HttpOnly, SameSite=Strict).
COOKIE = "modops_review"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_CHUNK = 1 << 16


class UploadOut(BaseModel):
    """The decision on a new upload."""

    id: str
    decision: str
    reasons: list[dict[str, Any]]
    scores: dict[str, float]
    model_version: str | None


class PublicUpload(BaseModel):
    """What anyone may read of a visible upload."""

    id: str
    uploader_id: str
    business_category: str
    image_url: str
    created_at: str


class ReviewUpload(BaseModel):
    """Everything a reviewer sees of an upload."""

    id: str
    uploader_id: str
    business_category: str
    status: str
    decision: str
    reasons: list[dict[str, Any]]
    scores: dict[str, float]
    model_version: str | None
    created_at: str
    updated_at: str
    reviewed_by: str | None
    image_url: str
    gradcam_url: str


class ReviewAction(BaseModel):
    """A reviewer's action: an optional label (``remove`` defaults to the flagged category) and note."""

    model_config = {"extra": "forbid"}
    label: str | None = None
    note: str = Field(default="", max_length=2000)


class CloseProfile(BaseModel):
    model_config = {"extra": "forbid"}
    note: str = Field(default="", max_length=2000)


def _review_view(r: UploadRecord) -> ReviewUpload:
    return ReviewUpload(
        id=r.id,
        uploader_id=r.uploader_id,
        business_category=r.business_category,
        status=r.status,
        decision=r.decision,
        reasons=r.reasons,
        scores=r.scores,
        model_version=r.model_version,
        created_at=r.created_at.isoformat(),
        updated_at=r.updated_at.isoformat(),
        reviewed_by=r.reviewed_by,
        image_url=f"/v1/review/uploads/{r.id}/image",
        gradcam_url=f"/v1/review/uploads/{r.id}/gradcam.png",
    )


def _checked_id(value: str, *, field: str) -> str:
    if not _ID.fullmatch(value or ""):
        raise HTTPException(
            422, detail=f"{field} must be 1-128 letters, digits or . _ : @ - (starting with a letter or digit)"
        )
    return value


async def _read_limited(upload: UploadFile, *, max_bytes: int) -> bytes:
    """The part's bytes, refusing (413) as soon as it passes ``max_bytes``: never buffers more."""
    chunks, size = [], 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, detail={"reason": "file_too_large", "detail": f"more than {max_bytes:,} bytes"})
        chunks.append(chunk)
    return b"".join(chunks)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE)


def _auth(service: ModerationService, *, roles: tuple[str, ...]) -> Callable[[Request], Reviewer]:
    def dependency(request: Request) -> Reviewer:
        token = _token(request)
        reviewer = service.store.authenticate(token) if token else None
        if reviewer is None:
            raise HTTPException(
                401,
                detail="a reviewer token is required: Authorization: Bearer TOKEN (`modops reviewers add`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if reviewer.role not in roles:
            raise HTTPException(403, detail=f"this needs role {' or '.join(roles)}; {reviewer.name} is {reviewer.role}")
        return reviewer

    return dependency


def create_app(service: ModerationService, *, page: bool = True) -> FastAPI:
    """The FastAPI app over ``service``; ``page`` adds the server-rendered reviewer page at ``/review``."""
    app = FastAPI(
        title="modops moderation service",
        version="1",
        description="Uploads in, decisions out; a review queue whose decisions become labels.",
    )
    app.state.service = service
    reviewer = Depends(_auth(service, roles=("reviewer", "admin")))
    admin = Depends(_auth(service, roles=("admin",)))

    @app.exception_handler(UploadRejected)
    async def _rejected(request: Request, exc: UploadRejected) -> JSONResponse:
        return JSONResponse({"detail": {"reason": exc.reason, "detail": exc.detail}}, status_code=exc.status)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        version, _ = service.model.current()
        return {"status": "ok", "model_version": version, "queue": service.store.queue_size()}

    @app.post("/v1/uploads", status_code=201, response_model=UploadOut)
    async def create_upload(
        image: Annotated[UploadFile, File(description="the image file")],
        uploader_id: Annotated[str, Form(max_length=128)],
        business_category: Annotated[str, Form(max_length=128)],
    ) -> UploadOut:
        _checked_id(uploader_id, field="uploader_id")
        _checked_id(business_category, field="business_category")
        data = await _read_limited(image, max_bytes=service.limits.max_bytes)
        from starlette.concurrency import run_in_threadpool

        record = await run_in_threadpool(
            service.submit, data, uploader_id=uploader_id, business_category=business_category
        )
        return UploadOut(
            id=record.id,
            decision=record.decision,
            reasons=record.reasons,
            scores=record.scores,
            model_version=record.model_version,
        )

    def visible(upload_id: str) -> UploadRecord:
        record = service.store.get_upload(upload_id) if _ID.fullmatch(upload_id) else None
        if record is None or not record.visible:
            raise HTTPException(404, detail="no such upload")
        return record

    @app.get("/v1/uploads/{upload_id}", response_model=PublicUpload)
    def read_upload(upload_id: str) -> PublicUpload:
        r = visible(upload_id)
        return PublicUpload(
            id=r.id,
            uploader_id=r.uploader_id,
            business_category=r.business_category,
            image_url=f"/v1/uploads/{r.id}/image",
            created_at=r.created_at.isoformat(),
        )

    @app.get("/v1/uploads/{upload_id}/image")
    def read_image(upload_id: str) -> FileResponse:
        return FileResponse(service.image_file(visible(upload_id)))

    def any_upload(upload_id: str) -> UploadRecord:
        record = service.store.get_upload(upload_id) if _ID.fullmatch(upload_id) else None
        if record is None:
            raise HTTPException(404, detail=f"no upload {upload_id!r}")
        return record

    @app.get("/v1/review/queue", response_model=list[ReviewUpload])
    def queue(limit: int = 50, offset: int = 0, who: Reviewer = reviewer) -> list[ReviewUpload]:
        if not (1 <= limit <= 500 and offset >= 0):
            raise HTTPException(422, detail="limit must be in 1..500 and offset >= 0")
        return [_review_view(r) for r in service.store.queue(limit=limit, offset=offset)]

    @app.get("/v1/review/uploads/{upload_id}", response_model=ReviewUpload)
    def review_upload(upload_id: str, who: Reviewer = reviewer) -> ReviewUpload:
        return _review_view(any_upload(upload_id))

    @app.get("/v1/review/uploads/{upload_id}/image")
    def review_image(upload_id: str, who: Reviewer = reviewer) -> FileResponse:
        return FileResponse(service.image_file(any_upload(upload_id)))

    @app.get("/v1/review/uploads/{upload_id}/gradcam.png")
    def review_gradcam(upload_id: str, who: Reviewer = reviewer) -> Response:
        return Response(gradcam_png(service, any_upload(upload_id)), media_type="image/png")

    @app.post("/v1/review/uploads/{upload_id}/{action}", response_model=ReviewUpload)
    def act(upload_id: str, action: str, body: ReviewAction | None = None, who: Reviewer = reviewer) -> ReviewUpload:
        return _review_view(apply_action(service, upload_id, action=action, who=who, body=body or ReviewAction()))

    @app.post("/v1/review/profiles/{uploader_id}/close")
    def close(uploader_id: str, body: CloseProfile | None = None, who: Reviewer = admin) -> dict[str, Any]:
        _checked_id(uploader_id, field="uploader_id")
        removed = service.close_profile(uploader_id, reviewer=who, note=(body or CloseProfile()).note)
        return {"uploader_id": uploader_id, "closed": True, "removed": [r.id for r in removed]}

    @app.get("/v1/review/audit")
    def audit(limit: int = 100, upload_id: str | None = None, who: Reviewer = admin) -> list[dict[str, Any]]:
        rows = service.store.audit_log(limit=max(1, min(limit, 1000)), upload_id=upload_id)
        return [
            {
                "id": a.id,
                "at": a.at.isoformat(),
                "reviewer": a.reviewer,
                "action": a.action,
                "upload_id": a.upload_id,
                "uploader_id": a.uploader_id,
                "before": a.before,
                "after": a.after,
                "note": a.note,
            }
            for a in rows
        ]

    if page:
        from modops.moderation.page import add_review_page

        add_review_page(app, service)
    return app


def apply_action(service: ModerationService, upload_id: str, *, action: str, who: Reviewer, body: ReviewAction):  # noqa: ANN201
    """A reviewer's action through the service, mapped to HTTP errors (404, 409, 422)."""
    if action not in ("approve", "remove", "restore"):
        raise HTTPException(404, detail=f"unknown action {action!r}: approve, remove or restore")
    try:
        return service.review(upload_id, action=action, reviewer=who, label=body.label, note=body.note)
    except UnknownUpload:
        raise HTTPException(404, detail=f"no upload {upload_id!r}") from None
    except InvalidTransition as exc:
        raise HTTPException(409, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None


def gradcam_png(service: ModerationService, record: UploadRecord) -> bytes:
    """A Grad-CAM overlay of the upload for its most-flagged category, as PNG bytes (cached on disk)."""
    import io

    version, predictor = service.model.current()
    # Keyed by the served version: a new champion explains the same upload differently.
    cache = service.images_dir / "gradcam" / f"{record.id}.v{version}.png"
    if cache.is_file():
        return cache.read_bytes()
    from modops.evaluation.explain_report import explain_image
    from modops.moderation.service import _flagged_category

    category = _flagged_category(record, categories=service.labels.categories)
    try:
        with service._model_lock:  # noqa: SLF001 - the same lock as scoring: one forward pass at a time
            grid, _info = explain_image(predictor, service.image_file(record).read_bytes(), category=category)
    except (AttributeError, LookupError, ValueError, RuntimeError) as exc:
        # A model without the layer Grad-CAM reads (a custom backbone) still serves; only the overlay is missing.
        raise HTTPException(501, detail=f"no Grad-CAM for model v{version}: {exc}") from exc
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(cache)
    return buf.getvalue()
