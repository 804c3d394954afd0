"""Render the promotion dashboard: a static site with no server-side code and no network access.

``build_site`` writes ``index.html``, ``versions/<version>.html``, ``assets/plotly.min.js`` and
``assets/style.css``, and copies Grad-CAM grids into ``versions/<version>/explain/``. Pages
link only to relative paths, so the site works from ``file://`` and over http alike. Output
depends only on the data: building twice gives identical bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from markupsafe import Markup

from modops.dashboard import charts, views
from modops.dashboard.data import DashboardData, VersionRecord, check_version_name
from modops.dashboard.fmt import fmt_when

__all__ = ["MARKER", "build_site", "render_index", "render_version"]

# A file every built site holds; a folder without it is never replaced, so a wrong
# ``out_dir`` (the state folder itself, a home directory) cannot be wiped by a rebuild.
MARKER = ".modops-dashboard"
_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _env() -> Any:
    import jinja2

    # Autoescape everything: reasons, descriptions and audit text are typed by people.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _common(data: DashboardData, *, root: str) -> dict[str, Any]:
    """Template variables every page needs."""
    champ = data.version(data.champion) if data.champion else None
    return {
        "model_name": data.model_name,
        "generated_at": fmt_when(data.generated_at),
        "root": root,
        "champion_page": champ.version if champ else None,
    }


def _chart(fig: Any, div_id: str, **kw: Any) -> Markup | None:
    """A figure's trusted HTML (plotly escapes ``<`` inside its JSON), or None without a figure."""
    return Markup(charts.to_div(fig, div_id, **kw)) if fig is not None else None


def render_index(data: DashboardData, *, env: Any | None = None) -> str:
    """The overview page: champion headline, version table with trend chart, audit trail."""
    env = env or _env()
    history = _chart(charts.history_figure(views.history_points(data)), "chart-history", height=380)
    return env.get_template("index.html").render(
        **_common(data, root=""),
        charts=bool(history),
        history_chart=history,
        head=views.headline(data),
        rows=views.version_rows(data),
        audit=views.audit_rows(data),
    )


def _version_charts(rec: VersionRecord) -> dict[str, Markup]:
    """The version page's charts; a chart whose data is not recorded is left out."""
    rows = views.metric_rows(rec)
    figs = {
        "metrics": charts.metrics_figure(rows, version=rec.version, champion_version=rec.champion_version),
        "pr": charts.pr_figure(
            rec.pr_curves,
            version=rec.version,
            champion_curves=rec.champion_pr_curves,
            champion_version=rec.champion_version,
            operating=views.operating_points(rec),
        ),
    }
    review = views.review_view(rec.metrics)
    if review is not None:
        figs["review"] = charts.review_figure(review["raw"])
    heights = {"metrics": 400, "pr": 480, "review": 260}
    out = {}
    for key, fig in figs.items():
        chart = _chart(fig, f"chart-{key}", height=heights[key])
        if chart is not None:
            out[key] = chart
    return out


def render_version(rec: VersionRecord, data: DashboardData, *, env: Any | None = None) -> str:
    """One version's page: verdict, metrics vs champion, curves, counts, review load, lineage, Grad-CAM."""
    env = env or _env()
    version_charts = _version_charts(rec)
    return env.get_template("version.html").render(
        **_common(data, root="../"),
        charts=version_charts,
        v=views.version_view(rec, data),
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _copy_explain(rec: VersionRecord, version_dir: Path) -> None:
    """Copy the version's Grad-CAM grids next to its page, under the names the page links to."""
    for name in sorted(rec.explain_images):
        src = Path(rec.explain_images[name])
        if not src.is_file():
            raise FileNotFoundError(f"Grad-CAM image '{name}' of version {rec.version} not found: {src}")
        dst = version_dir / "explain" / f"{views.explain_file_name(name.removesuffix('.png'))}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())  # bytes only: no source mtimes, so rebuilds are identical


def _write_assets(root: Path) -> None:
    from plotly.offline import get_plotlyjs

    # plotly's bundled JS, written once and linked locally: the site must work offline (no CDN).
    _write(root / "assets" / "plotly.min.js", get_plotlyjs())
    _write(root / "assets" / "style.css", (_TEMPLATES / "style.css").read_text(encoding="utf-8"))


def _render_into(data: DashboardData, root: Path) -> None:
    env = _env()
    _write_assets(root)
    _write(root / "index.html", render_index(data, env=env))
    for rec in data.versions:
        check_version_name(rec.version)
        _write(root / "versions" / f"{rec.version}.html", render_version(rec, data, env=env))
        _copy_explain(rec, root / "versions" / rec.version)
    _write(root / MARKER, "Built by modops dashboard; this folder is replaced on every build.\n")


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace anything but an earlier dashboard (or an empty folder)."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ValueError(f"dashboard output {out_dir} exists and is not a plain folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise ValueError(
            f"{out_dir} is not empty and was not built by `modops dashboard build`; "
            "choose an empty or new folder for the dashboard"
        )


def build_site(data: DashboardData, out_dir: Path) -> Path:
    """Write the dashboard for ``data`` into ``out_dir`` and return the path of its ``index.html``.

    The site is built in a temporary folder next to ``out_dir`` and swapped in at the end, so
    a failed build leaves the previous site intact and a reader never sees half a site.

    Raises:
        ValueError: ``out_dir`` holds something that is not an earlier dashboard, or a version
            name is not safe as a file name.
        FileNotFoundError: A Grad-CAM image named in the data does not exist.
    """
    out_dir = Path(out_dir).absolute()
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    try:
        _render_into(data, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; a served site must be readable
        _swap(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "index.html"


def _swap(new: Path, out_dir: Path) -> None:
    """Put ``new`` at ``out_dir``: two renames, then the old site is deleted."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        old.rmdir()  # only the unique name is needed; rename requires it to be free
        out_dir.rename(old)
    try:
        new.rename(out_dir)
    except BaseException:
        if old is not None:
            old.rename(out_dir)  # put the previous site back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
