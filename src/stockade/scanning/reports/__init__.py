"""Report writers: table, JSON, SARIF 2.1.0 and CycloneDX 1.5. Each turns a ScanReport into text."""

from __future__ import annotations

from collections.abc import Callable

from stockade.model.errors import UsageError
from stockade.scanning.results import ScanReport

FORMATS = ("table", "json", "sarif", "cyclonedx")


def renderer(name: str) -> Callable[[ScanReport], str]:
    """The writer for a format name, imported on demand (SARIF and CycloneDX are rarely needed)."""
    if name == "table":
        from stockade.scanning.reports.table import render_table

        return render_table
    if name == "json":
        from stockade.scanning.reports.json_report import render_json

        return render_json
    if name == "sarif":
        from stockade.scanning.reports.sarif import render_sarif

        return render_sarif
    if name == "cyclonedx":
        from stockade.scanning.reports.cyclonedx import render_cyclonedx

        return render_cyclonedx
    raise UsageError(f"unknown format {name!r} (expected one of: {', '.join(FORMATS)})")
