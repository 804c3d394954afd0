"""The stakeholders' promotion dashboard: a static site built from the model registry.

:mod:`modops.dashboard.data` holds the records, :mod:`modops.dashboard.site` renders them and
:mod:`modops.dashboard.serve` serves the result. Nothing here talks to MLflow; the collector
is :func:`modops.registry.dashboard_data.collect_dashboard_data`.
"""

from modops.dashboard.data import DashboardData, VersionRecord
from modops.dashboard.site import build_site

__all__ = ["DashboardData", "VersionRecord", "build_site"]
