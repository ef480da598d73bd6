"""What `appflow sync` and `appflow status` print, and their exit codes.

One implementation for the click commands (``appflow.cli.apps``) and for the click-free
fast path that hands them to `appflow serve` (``appflow.cli.entry``): both print exactly
this. It imports neither click nor rich (``appflow.cli.printing`` writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from appflow.cli.printing import emit_data, say, styled, table

if TYPE_CHECKING:
    from appflow.cli.handover import HandedOver
    from appflow.model.summary import ClusterSummary, HookNote, SyncAsk, SyncSummary

STATE_STYLE = {
    "Ready": "green",
    "NotReady": "yellow",
    "WaitApplied": "cyan",
    "ErrApplied": "red",
    "OutOfSync": "yellow",
    "Modified": "magenta",
    "Missing": "red",
    "Orphaned": "yellow",
    "Unknown": "dim",
}


def print_sync(done: HandedOver, *, ask: SyncAsk, output: str) -> int:
    """Print what a sync (DONE, asked as ASK) did in OUTPUT's format; its exit code."""
    if output == "table":
        for report in done.summaries:
            print_report(report)
    else:
        emit_data([report_data(r) for r in done.summaries], output=output)
    for line in done.skipped:
        say(styled(line, "yellow"), err=True, soft_wrap=True)
    for error in done.errors:
        say(f"[bold red]error:[/] {error}", err=True, soft_wrap=True)
    failed = (
        done.errors
        or not all(r.ok for r in done.summaries)
        or (ask.wait and not all(r.ready for r in done.summaries))
    )
    return 1 if failed else 0


def print_report(report: SyncSummary) -> None:
    print_problems(report)
    revision = f" revision {report.revision}" if report.revision else ""
    for c in report.clusters:
        summary = ", ".join(
            f"{c.counts.get(action, 0)} {action}"
            for action in ("created", "configured", "unchanged", "pruned")
        )
        if c.counts.get("kept"):
            summary += f", {c.counts['kept']} kept"
        if c.helm_revision is not None:
            summary = f"helm release revision {c.helm_revision}"
        state = styled(c.state, STATE_STYLE.get(c.state, ""))
        say(f"{report.app}{revision} -> {c.cluster}: {state} ({summary}) in {c.seconds:.2f}s")
        print_notes(c)
        # Kept on purpose (pruning off, keepResources): one line per reason, not per object.
        for reason, count in c.kept_on_purpose.items():
            say(f"    kept {count} objects: {reason}")
        for owner, taken in sorted(c.taken_from.items()):
            say(f"    took {', '.join(taken)} from app {owner}")


def print_notes(c: ClusterSummary) -> None:
    """The hooks that ran, the failing objects, and the objects prune left in place."""
    for hook in c.hooks:
        say(f"    {hook.text}")
    for f in c.failing[:10]:
        say(f"    {f.object}: {f.message}")
    if c.partial:
        say(f"    {styled(c.partial, 'yellow')}")
    for kept in c.kept:
        say(f"    kept {kept.object}: {kept.message}")


def print_problems(report: SyncSummary) -> None:
    for warning in report.warnings:
        say(f"[yellow]warning:[/] {warning}", err=True)
    if report.blocked:
        say(f"[bold red]sync of {report.app} refused before any change:[/]", err=True)
        for err in report.blocked:
            say(f"  - {err}", err=True)
    for cluster, text in sorted({**report.unreachable, **report.failed, **report.busy}.items()):
        say(f"[red]{cluster}:[/] {text}", err=True)
    for cluster, why in sorted(report.held.items()):
        say(f"[yellow]{cluster}:[/] held: {why}", err=True)
    for cluster, why in sorted(report.waiting.items()):
        say(f"[cyan]{cluster}:[/] WaitApplied: {why}", err=True)
    if report.rollout_failed:
        say(f"[bold red]rollout of {report.app} failed:[/] {report.rollout_failed}", err=True)
    for r in report.rolled_back:
        say(f"{r.cluster}: rolled back, {r.state}", err=True)


def report_data(report: SyncSummary) -> dict[str, Any]:
    return {
        "app": report.app,
        "revision": report.revision,
        "blocked": list(report.blocked),
        "unreachable": dict(report.unreachable),
        "busy": dict(report.busy),
        "failed": dict(report.failed),
        "held": dict(report.held),
        "warnings": list(report.warnings),
        "waiting": dict(report.waiting),
        "rolloutFailed": report.rollout_failed,
        "clusters": [
            {
                "cluster": c.cluster,
                "state": c.state,
                "counts": dict(c.counts),
                "health": c.health,
                "errors": list(c.errors),
                "hooks": [hook_data(h) for h in c.hooks],
                "takenFrom": {owner: list(refs) for owner, refs in c.taken_from.items()},
                "seconds": round(c.seconds, 3),
            }
            for c in report.clusters
        ],
    }


def hook_data(hook: HookNote) -> dict[str, Any]:
    return {
        "hook": hook.hook,
        "name": hook.name,
        "outcome": hook.outcome,
        "message": hook.message,
        "deleted": hook.deleted,
    }


def print_status(data: dict[str, Any], *, output: str) -> None:
    """Print the status grid DATA (``appflow.model.status.status_grid``) in OUTPUT's format."""
    if output != "table":
        emit_data(data, output=output)
        return
    clusters = data["clusters"]
    columns = [
        "APP",
        *(c["name"] + ("" if c["state"] == "Online" else f" ({c['state']})") for c in clusters),
    ]
    rows: list[Sequence[str]] = []
    for a in data["apps"]:
        row = [a["name"]]
        for c in clusters:
            d = a["deployments"].get(c["name"])
            if d is None:
                row.append("-")
            else:
                # WaitApplied names the revision being applied (or interrupted).
                shown = d["desiredRevision"] if d["state"] == "WaitApplied" else d["revision"]
                rev = f" r{shown}" if shown else ""
                row.append(styled(d["state"], STATE_STYLE.get(d["state"], "")) + rev)
        rows.append(row)
    table(columns, rows)
    for a in data["apps"]:
        for cluster_name, d in a["deployments"].items():
            # Drift and a silent cluster say what they are in the message; failing
            # objects, one line each.
            lines = [d["message"]] if d["state"] in ("Modified", "Unknown") else []
            for line in [*lines, *d["failing"][:5]]:
                say(f"  {a['name']} on {cluster_name}: {line}")
