"""Catalog lint: every problem of the entries of a catalog folder, before anyone installs them.

For each entry: app.yaml against its schema, the entry loads (README, questions), the
chart's default values plus the questions' defaults against the values schema, a values
schema exists, and ``helm lint`` of the chart. Problems are reported, never raised.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from appflow.engine.catalog.values import Values, check_values, values_schema
from appflow.errors import AppflowError
from appflow.model.catalog import question_defaults
from appflow.render import helm as render_helm
from appflow.sources import catalog as source


async def lint_catalog(directory: Path, *, helm: bool = True) -> list[str]:
    """Every problem of the catalog under DIRECTORY, as 'entry: message' lines."""
    if not directory.is_dir():
        return [f"{directory}: no such folder"]
    problems: list[str] = []
    for folder in sorted(
        p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        found, chart_dir = await asyncio.to_thread(_entry_problems, folder)
        problems.extend(found)
        if helm and chart_dir is not None:
            findings = await render_helm.helm_lint(chart_dir)
            problems.extend(f"{folder.name}: helm lint: {f}" for f in findings)
    return problems


def _entry_problems(folder: Path) -> tuple[list[str], Path | None]:
    """The problems of the entry in FOLDER, and its chart folder when it has a local chart
    and loads (only then is there a chart to lint)."""
    app_file = folder / "app.yaml"
    if not app_file.is_file():
        return [f"{folder.name}: no app.yaml"], None
    try:
        document = yaml.safe_load(app_file.read_text())
    except yaml.YAMLError as err:
        return [f"{folder.name}: app.yaml is not valid YAML: {err}"], None
    schema_errors = source.app_yaml_errors(document, file=str(app_file))
    if schema_errors:
        return [f"{folder.name}: {e}" for e in schema_errors], None
    try:
        entry = source.load_entry(folder)
    except AppflowError as err:
        return [f"{folder.name}: {err}"], None
    problems: list[str] = []
    if not entry.readme.strip():
        problems.append(f"{folder.name}: README.md is missing or empty")
    if entry.chart.kind != "local" or entry.chart.path is None:
        return problems, None
    chart_dir = folder / entry.chart.path
    try:
        defaults = source.chart_values(chart_dir)
        given = Values(user=question_defaults(entry.questions), chart=defaults, origins={})
        messages = check_values(entry, chart_dir, given, [])
        problems.extend(
            f"{folder.name}: chart values.yaml + questions defaults: {m}" for m in messages
        )
        if values_schema(entry, chart_dir) is None:
            problems.append(f"{folder.name}: no values.schema.json (entry or chart)")
    except AppflowError as err:
        problems.append(f"{folder.name}: {err}")
    return problems, chart_dir
