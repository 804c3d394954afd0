"""Static rendering of the dashboard: files, formatted numbers, escaping, determinism, missing parts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modops.dashboard import DashboardData, VersionRecord, build_site
from modops.dashboard.fmt import fmt_ci, fmt_count, fmt_delta_pts, fmt_num, fmt_pct, fmt_when
from modops.dashboard.site import MARKER
from tests.dashboard.conftest import XSS


def _read(site: Path, rel: str) -> str:
    return (site / rel).read_text(encoding="utf-8")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def site(synthetic_data: DashboardData, tmp_path: Path) -> Path:
    return build_site(synthetic_data, tmp_path / "site").parent


def test_writes_index_version_pages_assets_and_gradcam(site, synthetic_data):
    from plotly.offline import get_plotlyjs

    files = set(_tree(site))
    assert {"index.html", "versions/1.html", "versions/2.html", "assets/style.css", MARKER} <= files
    assert _read(site, "assets/plotly.min.js") == get_plotlyjs()
    for name, src in synthetic_data.version("1").explain_images.items():
        assert (site / "versions" / "1" / "explain" / f"{name}.png").read_bytes() == Path(src).read_bytes()
    page = _read(site, "versions/1.html")
    assert 'src="1/explain/weapon_false_positives.png"' in page and 'alt="Grad-CAM grid' in page
    assert not [p for p in files if p.startswith("versions/2/")]  # v2 has no Grad-CAM grids


def test_pages_are_offline_and_reference_local_plotly(site):
    for rel in ("index.html", "versions/1.html", "versions/2.html"):
        html = _read(site, rel)
        assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", html), f"{rel} loads a remote resource"
        assert "cdn" not in html.lower()
    assert '<script src="../assets/plotly.min.js">' in _read(site, "versions/2.html")
    assert '<script src="assets/plotly.min.js">' in _read(site, "index.html")


def test_numbers_are_formatted_with_intervals_and_champion(site, synthetic_data):
    v2, v1 = synthetic_data.version("2"), synthetic_data.version("1")
    page = _read(site, "versions/2.html")
    for cat in ("promo_spam", "weapon"):
        own, champ = v2.metrics["holdout"][cat], v1.metrics["holdout"][cat]
        for metric in ("precision", "recall"):
            assert f">{fmt_pct(own[metric])}<" in page
            assert f"CI {fmt_ci(own[f'{metric}_ci_low'], own[f'{metric}_ci_high'])}" in page
            assert f">{fmt_pct(champ[metric])}<" in page  # the champion's number next to it
            assert fmt_delta_pts(own[metric], champ[metric]) in page
        assert f">{fmt_num(own['pr_auc'])}<" in page and f">{fmt_num(champ['pr_auc'])}<" in page
        assert f">{fmt_count(own['fp'])}<" in page  # counts at the operating point
    assert "85.7%" in page and "CI 78.6–90.0%" in page and "-5.5 pts" in page  # the formats themselves
    assert "P(worse)" in page and ">0.998<" in page  # extra keys of a bootstrap check are shown


def test_index_headline_says_who_is_champion_and_what_happened(site):
    index = _read(site, "index.html")
    assert 'Version <a href="versions/1.html">v1</a> moderates uploads' in index
    assert "Version 2 failed the gate and was not promoted. The champion stays version 1." in index
    assert "70.0%" in index  # the champion's review saving
    assert "Rolled back" in index and "alice" in index and "promo_spam recall 83.8% → 75.0% (-8.8 pts)" in index
    # v3 of the rollback is gone from the registry: shown, but not linked to a missing page.
    assert "versions/3.html" not in index and ">v3<" in index


def test_user_text_is_escaped(site):
    for rel in ("index.html", "versions/2.html"):
        html = _read(site, rel)
        assert XSS not in html and "<script>alert" not in html
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html


def test_build_is_deterministic(synthetic_data, tmp_path):
    a = build_site(synthetic_data, tmp_path / "a").parent
    b = build_site(synthetic_data, tmp_path / "b").parent
    assert _tree(a) == _tree(b)
    build_site(synthetic_data, a)  # and rebuilding in place gives the same bytes again
    assert _tree(a) == _tree(b)


def test_missing_optional_parts_render_not_recorded(tmp_path):
    bare = VersionRecord(version="7")  # nothing recorded at all: an old registration
    data = DashboardData(model_name="m", generated_at="2026-01-01T00:00:00+00:00", versions=[bare])
    site = build_site(data, tmp_path / "site").parent
    page = _read(site, "versions/7.html")
    for text in (
        "No gate verdict recorded",
        "Evaluation metrics: not recorded.",
        "Counts: not recorded.",
        "Review load: not recorded for this version.",
        "Training parameters: not recorded.",
        "Grad-CAM examples: not recorded for this version.",
    ):
        assert text in page
    assert "plotly" not in page  # no charts without data, so no script either
    index = _read(site, "index.html")
    assert "There is no champion yet" in index and "No audit events recorded." in index


def test_partial_metrics_show_not_recorded_for_the_missing_keys(synthetic_data, tmp_path):
    site = build_site(synthetic_data, tmp_path / "site").parent
    v2 = _read(site, "versions/2.html")
    assert "Review load: not recorded" in v2  # metrics.json without review_load
    assert re.search(r"Holdout hash</dt><dd><code>not recorded</code>", v2)
    v1 = _read(site, "versions/1.html")
    assert "70.0% less manual review" in v1 and "61.3%" in v1 and "8.8%" in v1 and "30.0%" in v1


def test_rebuild_replaces_only_a_dashboard(synthetic_data, tmp_path):
    out = tmp_path / "site"
    build_site(synthetic_data, out)
    (out / "versions" / "stale.html").write_text("old")
    build_site(synthetic_data, out)
    assert not (out / "versions" / "stale.html").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not built by `modops dashboard build`"):
        build_site(synthetic_data, other)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp folders left


def test_failed_build_keeps_the_previous_site(synthetic_data, tmp_path):
    out = tmp_path / "site"
    build_site(synthetic_data, out)
    before = _tree(out)
    synthetic_data.version("1").explain_images["gone"] = str(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="gone"):
        build_site(synthetic_data, out)
    assert _tree(out) == before


def test_unsafe_version_names_are_rejected():
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="not a safe page name"):
            VersionRecord(version=bad)


def test_formats():
    assert fmt_pct(0.92345) == "92.3%" and fmt_pct(None) == "n/a" and fmt_pct(float("nan")) == "n/a"
    assert fmt_ci(0.881, 0.952) == "88.1–95.2%" and fmt_ci(None, 0.9) == ""
    assert fmt_num(0.91347) == "0.913" and fmt_count(12345) == "12,345"
    assert fmt_delta_pts(0.75, 0.8375) == "-8.8 pts" and fmt_delta_pts(None, 0.5) == ""
    assert fmt_when("2026-04-01T11:30:00+02:00") == "2026-04-01 09:30 UTC" and fmt_when("") == "not recorded"


def test_build_from_reloaded_data(synthetic_data, tmp_path):
    """DashboardData survives a JSON round trip, so a saved data set rebuilds the same site."""
    import json

    again = DashboardData.from_dict(json.loads(json.dumps(synthetic_data.to_dict())))
    a = build_site(synthetic_data, tmp_path / "a").parent
    b = build_site(again, tmp_path / "b").parent
    assert _tree(a) == _tree(b)


def test_duplicate_versions_are_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        DashboardData(model_name="m", generated_at="", versions=[VersionRecord("1"), VersionRecord("1")])


def test_rendering_layer_does_not_import_mlflow():
    """The site is pure rendering: importing it must not pull in MLflow (or plotly before a build)."""
    import subprocess
    import sys

    code = (
        "import sys, modops.dashboard, modops.dashboard.serve; print(sorted({'mlflow', 'plotly'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
