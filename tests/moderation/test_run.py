"""`modops reviewers` and `modops serve`'s wiring: tokens, clear errors, the champion followed as it moves."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from modops.cli import app
from tests.conftest import REPO, register_champion
from tests.moderation.conftest import encode, picture

runner = CliRunner()


def _db(tmp_path: Path) -> list[str]:
    return ["--db-url", f"sqlite:///{tmp_path / 'review.db'}"]


def test_reviewers_add_prints_a_token_that_authenticates(tmp_path: Path) -> None:
    from modops.moderation.store import ReviewStore

    added = runner.invoke(app, ["reviewers", "add", "rita", "--role", "admin", *_db(tmp_path)])
    assert added.exit_code == 0, added.output
    token = added.output.strip()
    assert len(token) >= 32
    with ReviewStore(f"sqlite:///{tmp_path / 'review.db'}") as store:
        who = store.authenticate(token)
        assert who is not None and (who.name, who.role) == ("rita", "admin")
        assert token not in (tmp_path / "review.db").read_bytes().decode("latin-1")  # only its hash is stored

    listed = runner.invoke(app, ["reviewers", "list", *_db(tmp_path)])
    assert listed.exit_code == 0 and listed.output.startswith("rita\tadmin\tactive")

    again = runner.invoke(app, ["reviewers", "add", "rita", *_db(tmp_path)])
    assert again.exit_code == 1 and "rita" in again.output and "Traceback" not in again.output

    gone = runner.invoke(app, ["reviewers", "deactivate", "rita", *_db(tmp_path)])
    assert gone.exit_code == 0
    with ReviewStore(f"sqlite:///{tmp_path / 'review.db'}") as store:
        assert store.authenticate(token) is None

    nobody = runner.invoke(app, ["reviewers", "deactivate", "nobody", *_db(tmp_path)])
    assert nobody.exit_code == 1 and "nobody" in nobody.output


def test_reviewers_reject_a_bad_role_and_a_bad_db_url(tmp_path: Path) -> None:
    bad_role = runner.invoke(app, ["reviewers", "add", "x", "--role", "owner", *_db(tmp_path)])
    assert bad_role.exit_code == 2 and "reviewer" in bad_role.output
    bad_url = runner.invoke(app, ["reviewers", "list", "--db-url", "nosuchdb://x"])
    assert bad_url.exit_code == 1 and "Traceback" not in bad_url.output


def test_serve_without_a_champion_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", *_db(tmp_path), "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 1
    assert "no versions" in result.output or "no champion" in result.output


def test_the_service_follows_the_champion_alias(tmp_path: Path) -> None:
    from modops.config import load_settings
    from modops.moderation.run import build_service

    first = register_champion(tmp_path, seed=0, sha="a" * 64)
    service = build_service(
        load_settings(),
        params_path=REPO / "params.yaml",
        labels_dir=tmp_path / "labels",
        db_url=f"sqlite:///{tmp_path / 'review.db'}",
    )
    try:
        record = service.submit(encode(picture(1, tint="grey")), uploader_id="u1", business_category="restaurants")
        assert record.model_version == first
        service.model.reload_seconds = 0.0  # ask the registry on every upload from now on
        second = register_champion(tmp_path, seed=1, sha="b" * 64)
        assert second != first
        time.sleep(0.01)
        record = service.submit(encode(picture(2, tint="grey")), uploader_id="u1", business_category="restaurants")
        assert record.model_version == second
    finally:
        service.store.close()
