"""Printing results: rich tables for people, JSON and YAML for machines.

What only some commands print is imported when they print it (rich's tables, its
spinner): a sync handed to `appflow serve` prints a line or two, and a fresh process
pays for every module it imports (see ``bench.sync_single``'s fresh-process figures).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

OUTPUT_FORMATS = ("table", "json", "yaml")

console = Console()
err_console = Console(stderr=True)

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
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
        return
    if output == "yaml":
        import yaml  # only here: most commands never print YAML

        click.echo(yaml.safe_dump(_plain(data), sort_keys=False), nl=False)
        return
    table = new_table(columns, title=title)
    for row in rows(data) if rows else ():
        table.add_row(*row)
    console.print(table)


def new_table(columns: Sequence[str], *, title: str | None = None) -> Table:
    """A table whose cells wrap rather than end in "…" when the terminal is narrow.

    Names are single words to rich (no spaces), so by default it cuts them at the end,
    and two apps that differ only there ("shop-eu-west", "shop-eu-east") would print
    the same. Folding keeps every character.
    """
    from rich.table import Table

    table = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


@contextmanager
def progress_status(text: str) -> Iterator[Callable[[str], None]]:
    """A spinner with TEXT on stderr while the block runs; yields what updates its text.

    Only a terminal shows one: rich's status is transient, so to a file or a pipe it
    prints nothing, and its import (rich's live display) is skipped there.
    """
    if not err_console.is_terminal:
        yield lambda _text: None
        return
    with err_console.status(text) as status:
        yield status.update


def _plain(data: Any) -> Any:
    # yaml.safe_dump refuses tuples, Paths and the like: go through JSON.
    return json.loads(json.dumps(data, default=str))


def format_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"
