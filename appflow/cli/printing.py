"""Writing to the terminal, a pipe or a file, without paying for rich where it adds nothing.

Lines are written in rich's markup (``[red]error:[/] ...``). To a terminal they go
through rich (colours, the spinner, tables that fold to the terminal's width); to a pipe
or a file, where rich would only strip the markup, they are written as plain text, and
neither rich nor click is imported. That keeps a fresh `appflow sync` or `appflow status`
handed to `appflow serve` (``appflow.cli.entry``) to Python's own start-up.

Plain lines are not wrapped: a script reading the output gets one line per line.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

DEBUG_ENV = "APPFLOW_DEBUG"
"""Set, an error that is appflow's own fault shows its traceback (as --debug does)."""
INTERNAL_ERROR_EXIT = 70
"""EX_SOFTWARE: appflow failed by a fault of its own, not of its input."""

# The styles appflow's own markup uses; anything else in brackets is text (an error may
# quote `[--all]` or a list).
_STYLE = r"(?:bold|dim|red|green|yellow|cyan|magenta)"
_TAG = re.compile(rf"\[(?:/|{_STYLE}(?: {_STYLE})*)\]")


def styled(text: str, style: str) -> str:
    """TEXT in STYLE (one of rich's style names; "" for none), as markup."""
    return f"[{style}]{text}[/]" if style else text


@cache
def console(*, err: bool = False) -> Console:
    """rich's console on stdout (or stderr with ERR): imported at the first use."""
    from rich.console import Console

    return Console(stderr=err)


def is_terminal(*, err: bool = False) -> bool:
    """Whether rich would write colours to stdout (stderr with ERR); its own test, cheaply."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return console(err=err).is_terminal
    stream = _stream(err=err)
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def say(markup: str, *, err: bool = False, soft_wrap: bool = False) -> None:
    """Print one line of MARKUP to stdout (stderr with ERR)."""
    if is_terminal(err=err):
        console(err=err).print(markup, highlight=False, soft_wrap=soft_wrap)
    else:
        print(_TAG.sub("", markup), file=_stream(err=err))


def say_error(text: str) -> None:
    """The line of an error that stopped the command."""
    say(f"[bold red]error:[/] {text}", err=True, soft_wrap=True)


def say_bug(err: Exception) -> None:
    """The line of an error that is appflow's own fault (--debug shows its traceback)."""
    from appflow.redaction import scrub

    say_error(
        f"internal error in appflow: {type(err).__name__}: {scrub(str(err))}"
        " (this is a bug: please report it; appflow --debug shows the traceback)"
    )


def new_table(columns: Sequence[str], *, title: str | None = None) -> Table:
    """A rich table whose cells wrap rather than end in "…" when the terminal is narrow.

    Names are single words to rich (no spaces), so by default it cuts them at the end,
    and two apps that differ only there ("shop-eu-west", "shop-eu-east") would print
    the same. Folding keeps every character.
    """
    from rich.table import Table

    table = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """Print ROWS (cells in markup) under COLUMNS: rich's table on a terminal, else
    columns two spaces apart, each as wide as its widest cell."""
    if is_terminal():
        shown = new_table(columns, title=title)
        for row in rows:
            shown.add_row(*row)
        console().print(shown)
        return
    lines = [list(columns), *([_TAG.sub("", cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    if title:
        print(title)
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def emit_data(data: Any, *, output: str) -> None:
    """Print DATA as JSON (OUTPUT "json") or YAML (any other)."""
    if output == "json":
        print(json.dumps(data, indent=2, sort_keys=False, default=str))
        return
    import yaml  # only here: most commands never print YAML

    # yaml.safe_dump refuses tuples, Paths and the like: go through JSON.
    plain = json.loads(json.dumps(data, default=str))
    sys.stdout.write(yaml.safe_dump(plain, sort_keys=False))


@contextmanager
def progress(text: str) -> Iterator[Callable[[str], None]]:
    """A spinner with TEXT on stderr while the block runs; yields what updates its text.

    Only a terminal shows one: rich's status is transient, so to a file or a pipe it
    prints nothing, and rich is not imported there.
    """
    if not is_terminal(err=True):
        yield lambda _text: None
        return
    with console(err=True).status(text) as status:
        yield status.update


def _stream(*, err: bool) -> TextIO:
    return sys.stderr if err else sys.stdout
