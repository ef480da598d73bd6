"""The `appflow` command's entry point: `appflow sync` and `appflow status` without click.

When `appflow serve` runs for this appflow home, `appflow sync NAME...` and `appflow
status` are its to do (``appflow.cli.handover``), and what is left to the fresh process
is start-up and printing. click, rich and the command modules cost it more than the
handover itself, so the exact forms handed over are recognised here first, answered
through the daemon's socket, and printed by the code the click commands print with
(``appflow.cli.reports``). A sync form no daemon answers (`appflow sync --all` on a
machine without `appflow serve`) is synced here, through the code the click command syncs
with (``appflow.cli.syncing``): it pays for the engine, not for click and rich on top.
Anything else goes to the click command (``appflow.cli.main``) exactly as typed: --help,
--debug, --hub (or a hub from APPFLOW_HUB or `appflow hub use`), an option this parser
does not know, a bad value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

OUTPUT_FORMATS = ("table", "json", "yaml")


@dataclass(frozen=True)
class _Form:
    """The options of one handed-over command, as its click command declares them."""

    flags: dict[str, str]
    values: dict[str, str]
    """Option (each spelling) to its parameter name."""
    defaults: dict[str, Any]
    multiple: frozenset[str] = frozenset()


_SYNC = _Form(
    flags={
        "--all": "all_apps",
        "--force-conflicts": "force_conflicts",
        "--take-ownership": "take_ownership",
        "--wait": "wait",
    },
    values={
        "--cluster": "clusters",
        "--timeout": "timeout",
        "--lock-timeout": "lock_timeout",
        "-o": "output",
        "--output": "output",
    },
    defaults={"clusters": (), "timeout": 300.0, "lock_timeout": 300.0, "output": "table"},
    multiple=frozenset({"clusters"}),
)
_STATUS = _Form(
    flags={"--cached": "cached"},
    values={"--timeout": "timeout", "-o": "output", "--output": "output"},
    defaults={"timeout": 5.0, "output": "table"},
)


def main() -> None:
    code = handed_over(sys.argv[1:])
    if code is None:
        code = synced_here(sys.argv[1:])
    if code is None:
        from appflow.cli.main import main as click_main

        click_main()
        return
    sys.exit(code)


def handed_over(args: Sequence[str]) -> int | None:
    """Run ARGS by `appflow serve` when they are a handed-over form; the exit code, or
    None for the click command to run them."""
    if not args or args[0] not in ("sync", "status"):
        return None
    form = _SYNC if args[0] == "sync" else _STATUS
    parsed = _parse(args[1:], form)
    if parsed is None or parsed["output"] not in OUTPUT_FORMATS:
        return None
    from appflow.cli.common import hub_asked
    from appflow.paths import serve_socket

    if hub_asked(None) or not serve_socket().exists():
        return None
    try:
        return _sync(parsed) if args[0] == "sync" else _status(parsed)
    except KeyboardInterrupt:
        return _aborted()
    except Exception as err:
        return _failed(err)


def synced_here(args: Sequence[str]) -> int | None:
    """Run ARGS in this process when they are a sync form (no daemon answered it); the exit
    code, or None for the click command to run them."""
    if not args or args[0] != "sync":
        return None
    parsed = _parse(args[1:], _SYNC)
    if parsed is None or parsed["output"] not in OUTPUT_FORMATS:
        return None
    from appflow.cli.common import hub_asked
    from appflow.model.summary import SyncAsk

    output = parsed.pop("output")
    ask = SyncAsk(**parsed)
    if hub_asked(None) or ask.lock_timeout < 0:
        return None
    from appflow.cli.logs import configure_logging
    from appflow.cli.syncing import run_sync

    configure_logging(debug=False)  # what the click command's root does without --debug
    try:
        return run_sync(ask, output=output, hand_over_allowed=False)
    except KeyboardInterrupt:
        return _aborted()
    except Exception as err:
        return _failed(err)


def _sync(parsed: dict[str, Any]) -> int | None:
    from appflow.cli.handover import hand_over
    from appflow.cli.printing import progress
    from appflow.cli.reports import print_sync
    from appflow.model.summary import SyncAsk

    output = parsed.pop("output")
    ask = SyncAsk(**parsed)
    if ask.lock_timeout < 0:
        return None  # click's range check words the refusal
    with progress("syncing...") as update:
        done = hand_over(ask, progress=update)
    return None if done is None else print_sync(done, ask=ask, output=output)


def _status(parsed: dict[str, Any]) -> int | None:
    from appflow.cli.handover import status_of_serve
    from appflow.cli.reports import print_status

    if parsed["names"]:
        return None
    data = status_of_serve(cached=parsed["cached"], timeout=parsed["timeout"])
    if data is None:
        return None
    print_status(data, output=str(parsed["output"]))
    return 0


def _parse(args: Sequence[str], form: _Form) -> dict[str, Any] | None:
    """ARGS read as click reads them for FORM (flags by their name, values by their
    parameter's, positionals as "names"); None for anything click would read otherwise
    or refuse."""
    parsed: dict[str, Any] = dict.fromkeys(form.flags.values(), False)
    parsed.update(form.defaults)
    names: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        option, value = arg, None
        if arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
        elif arg.startswith("-o") and len(arg) > 2:
            option, value = "-o", arg[2:]
        if option in form.flags and value is None:
            parsed[form.flags[option]] = True
        elif option in form.values:
            if value is None:
                if not rest:
                    return None
                value = rest.pop(0)
            name = form.values[option]
            typed = _typed(name, value)
            if typed is None:
                return None
            parsed[name] = (*parsed[name], typed) if name in form.multiple else typed
        elif arg.startswith("-") and arg != "-":
            return None  # --help, --, an option only click knows
        else:
            names.append(arg)
    parsed["names"] = tuple(names)
    return parsed


def _typed(name: str, value: str) -> object | None:
    if name not in ("timeout", "lock_timeout"):
        return value
    try:
        return float(value)
    except ValueError:
        return None


def _aborted() -> int:
    # Ctrl-C: what click's command says and returns for it.
    print("Aborted!", file=sys.stderr)
    return 1


def _failed(err: Exception) -> int:
    from appflow.cli.printing import DEBUG_ENV, INTERNAL_ERROR_EXIT, say_bug, say_error
    from appflow.errors import AppflowError

    if isinstance(err, AppflowError):
        say_error(str(err))
        return 1
    if os.environ.get(DEBUG_ENV):
        raise err
    say_bug(err)
    return INTERNAL_ERROR_EXIT
