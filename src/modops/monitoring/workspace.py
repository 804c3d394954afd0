"""The Evidently workspace: one project, one run per scored day and model version, a dashboard.

``evidently ui --workspace DIR`` shows the trend over days. Re-judging a day replaces its run
(runs are matched by name, ``YYYY-MM-DD vN``), so the workspace holds one run per day and
version however often a day is re-run, and the dashboard's panels are re-applied from
``monitoring/workspace.yaml`` each time, so the file is the one source of the layout.
"""

from __future__ import annotations

from pathlib import Path

from modops.config import PanelConfig, WorkspaceConfig

__all__ = ["add_day_run", "apply_panels"]


def _project(ws, cfg: WorkspaceConfig):  # noqa: ANN001, ANN202
    found = [p for p in ws.search_project(cfg.project) if p.name == cfg.project]
    if found:
        return found[0]
    project = ws.create_project(cfg.project)
    project.description = cfg.description
    project.save()
    return project


def _panel(panel: PanelConfig):  # noqa: ANN202 - an Evidently DashboardPanelPlot
    from evidently.sdk import panels
    from evidently.sdk.models import PanelMetric

    if panel.kind == "text":
        return panels.text_panel(panel.title, panel.description, size=panel.size)
    values = [PanelMetric(metric=v.metric, metric_labels=dict(v.labels), legend=v.legend) for v in panel.values]
    make = {"line": panels.line_plot_panel, "counter": panels.counter_panel, "bar": panels.bar_plot_panel}[panel.kind]
    return make(panel.title, values, description=panel.description, size=panel.size)


def apply_panels(project, cfg: WorkspaceConfig) -> None:  # noqa: ANN001 - an Evidently Project
    """Replace the project's dashboard with the configured panels."""
    dashboard = project.dashboard
    dashboard.clear_dashboard()
    for panel in cfg.panels:
        dashboard.add_panel(_panel(panel), tab=panel.tab)


def add_day_run(workspace_dir: Path, snapshot, *, cfg: WorkspaceConfig, run_name: str) -> str:  # noqa: ANN001
    """Add a day's snapshot to the project (replacing an earlier run of that name); returns the run id."""
    from evidently.ui.workspace import Workspace

    workspace_dir.mkdir(parents=True, exist_ok=True)
    ws = Workspace(str(workspace_dir))
    project = _project(ws, cfg)
    for run_id in ws.list_runs(project.id):
        run = ws.get_run(project.id, run_id)
        if run is not None and run.name == run_name:
            ws.delete_run(project.id, run_id)
    ref = ws.add_run(project.id, snapshot, include_data=False, name=run_name)
    apply_panels(project, cfg)
    return str(ref.id)
