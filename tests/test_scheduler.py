"""The local scheduler's helpers: reading Airflow's JSON output past its log lines, picking runs."""

from __future__ import annotations

from datetime import UTC, datetime

from modops.scheduler import _after, _json, free_port


def test_the_json_list_is_found_after_warning_lines_that_contain_brackets():
    text = (
        "2026-12-05T11:51:50Z [warning  ] Could not import graphviz. [py.warnings] category=UserWarning\n"
        '[{"dag_id": "a", "run_id": "asset_triggered__x", "state": "success"}]\n'
        "trailing log line [info]\n"
    )
    assert _json(text) == [{"dag_id": "a", "run_id": "asset_triggered__x", "state": "success"}]
    assert _json("no runs found") == []


def test_runs_are_kept_from_the_moment_given():
    when = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert _after({"run_after": "2026-12-05T12:00:01+00:00"}, when)
    assert not _after({"run_after": "2026-12-05T11:59:59+00:00"}, when)
    assert not _after({"run_after": "", "start_date": ""}, when)


def test_free_port_is_a_usable_port():
    assert 1024 < free_port() < 65536
