"""Serving a built dashboard over http."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from modops.dashboard import build_site
from modops.dashboard.serve import make_server, start_background


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def test_serves_the_built_site(synthetic_data, tmp_path):
    site = build_site(synthetic_data, tmp_path / "site").parent
    with start_background(site) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, ctype, body = _get(server.url)
        assert status == 200 and ctype.startswith("text/html") and b"promotion dashboard" in body
        status, ctype, body = _get(server.url + "assets/plotly.min.js")
        assert status == 200 and "javascript" in ctype and len(body) > 1_000_000
        with pytest.raises(urllib.error.HTTPError) as info:
            _get(server.url + "versions/99.html")
        assert info.value.code == 404
    with pytest.raises(urllib.error.URLError):  # closed: the port is released
        _get(server.url)


def test_unbuilt_site_says_to_build_first(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `modops dashboard build` first"):
        make_server(tmp_path / "nothing-here")
