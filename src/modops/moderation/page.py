"""The reviewer page: the queue as server-rendered HTML, with each image, its scores, the reasons and
a Grad-CAM overlay, and approve / remove / restore / close-profile buttons.

Reviewers sign in with their API token (``modops reviewers add``) once; it is kept in an HttpOnly,
SameSite=Strict cookie, so the page's plain HTML forms authenticate without JavaScript and a
cross-site form cannot act for a reviewer. Each action is an ordinary POST answered by a redirect
back to the queue (post/redirect/get), so a reload never repeats it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from modops.moderation.service import ModerationService, _flagged_category
from modops.moderation.store import Reviewer

__all__ = ["add_review_page"]

_TEMPLATES = Path(__file__).with_name("templates")
_STATUSES = ("pending_review", "blocked", "removed", "discarded", "allowed")


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(("html",)))


def _signed_in(service: ModerationService, request: Request) -> Reviewer | None:
    token = request.cookies.get("modops_review")
    return service.store.authenticate(token) if token else None


def _same_origin(request: Request) -> None:
    """Refuse a cross-site form post (defence in depth beside the SameSite cookie)."""
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, detail="cross-site form post refused")


def _back(message: str, *, status: str = "pending_review") -> RedirectResponse:
    # Only a known status goes back into the URL (the form's value is the client's to change).
    status = status if status in _STATUSES else "pending_review"
    return RedirectResponse(f"/review?status={status}&msg={quote(message)}", status_code=303)


def add_review_page(app: FastAPI, service: ModerationService) -> None:
    """Mount ``/review`` (the queue), ``/review/login`` and the page's form actions on ``app``."""
    env = _env()

    def render(name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context))

    @app.get("/review/login", response_class=HTMLResponse)
    def login_form(error: str = "") -> HTMLResponse:
        return render("login.html", error=error)

    @app.post("/review/login")
    def login(request: Request, token: str = Form(...)) -> Response:
        _same_origin(request)
        reviewer = service.store.authenticate(token.strip())
        if reviewer is None:
            return RedirectResponse("/review/login?error=unknown+or+inactive+token", status_code=303)
        response = RedirectResponse("/review", status_code=303)
        response.set_cookie(
            "modops_review",
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",  # behind TLS the cookie never travels in clear
            max_age=12 * 3600,
        )
        return response

    @app.post("/review/logout")
    def logout() -> Response:
        response = RedirectResponse("/review/login", status_code=303)
        response.delete_cookie("modops_review")
        return response

    @app.get("/review", response_class=HTMLResponse)
    def queue_page(request: Request, status: str = "pending_review", msg: str = "") -> Response:
        who = _signed_in(service, request)
        if who is None:
            return RedirectResponse("/review/login", status_code=303)
        if status not in _STATUSES:
            raise HTTPException(422, detail=f"status must be one of {list(_STATUSES)}")
        uploads = service.store.with_status(status, limit=100)
        categories = service.labels.categories
        return render(
            "queue.html",
            who=who,
            uploads=uploads,
            status=status,
            statuses=_STATUSES,
            queue_size=service.store.queue_size(),
            message=msg,
            categories=categories,
            # The remove form preselects what the API's remove defaults to: the flagged category.
            flagged={u.id: _flagged_category(u, categories=categories) for u in uploads},
        )

    @app.post("/review/uploads/{upload_id}/{action}")
    def page_action(
        request: Request,
        upload_id: str,
        action: str,
        label: str = Form(""),
        note: str = Form(""),
        status: str = Form("pending_review"),
    ) -> Response:
        from modops.moderation.app import ReviewAction, apply_action

        _same_origin(request)
        who = _signed_in(service, request)
        if who is None:
            return RedirectResponse("/review/login", status_code=303)
        try:
            apply_action(service, upload_id, action=action, who=who, body=ReviewAction(label=label or None, note=note))
        except HTTPException as exc:
            return _back(f"{action} {upload_id}: {exc.detail}", status=status)
        return _back(f"{action}d {upload_id}", status=status)

    @app.post("/review/profiles/{uploader_id}/close")
    def page_close(request: Request, uploader_id: str, status: str = Form("pending_review")) -> Response:
        _same_origin(request)
        who = _signed_in(service, request)
        if who is None:
            return RedirectResponse("/review/login", status_code=303)
        if who.role != "admin":
            return _back(f"closing a profile needs role admin; {who.name} is {who.role}", status=status)
        from modops.moderation.app import _checked_id

        try:
            _checked_id(uploader_id, field="uploader_id")
        except HTTPException as exc:
            return _back(f"close profile: {exc.detail}", status=status)
        removed = service.close_profile(uploader_id, reviewer=who)
        return _back(f"closed profile {uploader_id}: {len(removed)} upload(s) removed", status=status)
