"""`appflow sync`, wherever it runs: handed to a running `appflow serve`, or synced here.

The click command (``appflow.cli.apps``) and the entry point (``appflow.cli.entry``, which
runs the sync forms without importing click, rich or the command modules) both sync
through ``run_sync``, so the same ask prints the same through either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from appflow.model.summary import SyncAsk

if TYPE_CHECKING:
    from appflow.engine.batch import BatchResult


def run_sync(ask: SyncAsk, *, output: str, hand_over_allowed: bool) -> int:
    """Sync as ASK says (by a running `appflow serve` when HAND_OVER_ALLOWED and one
    answers, else in this process) and print what it did in OUTPUT's format; the exit code."""
    from appflow.cli.handover import HandedOver, hand_over
    from appflow.cli.printing import progress
    from appflow.cli.reports import print_sync

    with progress("syncing...") as update:
        handed = hand_over(ask, progress=update) if hand_over_allowed else None
        if handed is None:
            result = _sync_here(ask, update)
            handed = HandedOver(
                summaries=tuple(r.summary() for r in result.reports),
                errors=tuple(str(e) for e in result.errors),
                skipped=result.skipped,
            )
    return print_sync(handed, ask=ask, output=output)


def _sync_here(ask: SyncAsk, update: Callable[[str], None]) -> BatchResult:
    from appflow.cli.common import collect_less, engine_session, run

    with engine_session() as engine:
        collect_less()  # the engine is imported: what the sync allocates is what is left
        return run(engine.sync_asked(ask, progress=update))
