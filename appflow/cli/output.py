"""Printing results for click commands: tables for people, JSON and YAML for machines.

The writing itself is ``appflow.cli.printing``'s (rich only on a terminal), which the
click-free fast path of ``appflow.cli.entry`` shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from appflow.cli.printing import console as _console
from appflow.cli.printing import emit_data, new_table, table

OUTPUT_FORMATS = ("table", "json", "yaml")

console = _console()
err_console = _console(err=True)

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)


def emit(
    data: Any,
    *,
    output: str,
    columns: Sequence[str] = (),
    rows: Callable[[Any], Sequence[Sequence[str]]] | None = None,
    title: str | None = None,
) -> None:
    """Print DATA as JSON or YAML, or as a table of COLUMNS built by ROWS."""
    if output != "table":
        emit_data(data, output=output)
        return
    table(columns, rows(data) if rows else (), title=title)


def format_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


__all__ = ["console", "emit", "err_console", "new_table", "output_option"]
