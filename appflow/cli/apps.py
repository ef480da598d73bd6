"""`appflow repo`, `appflow app`, `appflow sync` and `appflow status`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from appflow.cli.common import engine_session, run, store_session
from appflow.cli.output import console, emit, err_console, output_option
from appflow.cli.reports import (
    hook_data,
    print_notes,
    print_problems,
    print_report,
    print_status,
)
from appflow.errors import ConfigError, NotFoundError
from appflow.model.giturl import redact_url
from appflow.model.summary import ClusterSummary, SyncAsk, hook_note

if TYPE_CHECKING:
    from appflow.model.records import DeploymentRecord

# What a command needs is imported inside it: `appflow status --cached` reads the store
# and prints, and must not pay for the engine, the Kubernetes client or git; a sync a
# running `appflow serve` takes over needs none of them either.


@click.group()
def repo() -> None:
    """Git repositories (or local folders) that hold apps."""


@repo.command("add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--branch",
    "ref",
    default="HEAD",
    show_default=True,
    help="Branch to follow (tag:T, semver:RANGE, commit:SHA also work).",
)
@click.option(
    "--path", "paths", multiple=True, help="Folder(s) in the repository to look for apps in."
)
@click.option(
    "--ssh-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private SSH key for an ssh:// or git@host:org/repo URL (copied, mode 0600).",
)
@click.option(
    "--known-hosts",
    type=click.Path(dir_okay=False, path_type=Path),
    help="known_hosts file with the SSH server's key (default: ~/.ssh/known_hosts).",
)
@click.option("--username", help="User for --password-env (or to send a token or key as).")
@click.option(
    "--password-env", metavar="VAR", help="Environment variable holding the HTTPS password."
)
@click.option(
    "--token-env", metavar="VAR", help="Environment variable holding an HTTPS access token."
)
def repo_add(
    name: str,
    url: str,
    ref: str,
    paths: tuple[str, ...],
    ssh_key: Path | None,
    known_hosts: Path | None,
    username: str | None,
    password_env: str | None,
    token_env: str | None,
) -> None:
    """Register repository NAME at URL (or a local folder) and every app found under --path.

    A private repository takes one of --ssh-key FILE [--known-hosts FILE],
    --username USER --password-env VAR, or --token-env VAR. appflow keeps a copy of
    the secret in its data folder, readable only by you, and never prints it; every
    sync, poll and webhook of the repository uses it.
    """
    from appflow.engine.repos import given_credentials, register_repo

    credentials = given_credentials(
        ssh_key=ssh_key,
        known_hosts=known_hosts,
        username=username,
        password_env=password_env,
        token_env=token_env,
    )
    with store_session() as store:
        apps = run(
            register_repo(store, name=name, url=url, ref=ref, paths=paths, credentials=credentials)
        )
    for app in apps:
        console.print(f"app {app.name} ({app.path or '.'})")


@repo.command("list")
@output_option
def repo_list(output: str) -> None:
    """Registered repositories: URL, ref, folders, the commit last fetched, how appflow signs in."""
    with store_session() as store:
        data = [
            {
                "name": r.name,
                # No credential is ever printed: a password written into the URL is not shown.
                "url": redact_url(r.url),
                "ref": r.ref,
                "paths": list(r.paths),
                "commit": r.last_commit,
                # What kind of credentials, never them nor where they are kept.
                "auth": r.auth.describe(),
            }
            for r in store.list_repos()
        ]
    emit(
        data,
        output=output,
        columns=("NAME", "URL", "REF", "PATHS", "COMMIT", "AUTH"),
        rows=lambda d: [
            [
                x["name"],
                x["url"],
                x["ref"] or "-",
                ",".join(x["paths"]) or ".",
                (x["commit"] or "-")[:12],
                x["auth"] if x["auth"] != "none" else "-",
            ]
            for x in d
        ],
    )


@click.group()
def app() -> None:
    """AppFlows: add, inspect, diff, sync, roll back, delete."""


@app.command("add")
@click.argument("name")
@click.option(
    "--local",
    "local",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A local folder that holds the app.",
)
@click.option("--repo", "repo_name", help="A registered repository that holds the app.")
@click.option("--path", default="", help="The app's folder inside the repository or local folder.")
def app_add(name: str, local: Path | None, repo_name: str | None, path: str) -> None:
    """Register app NAME from a local folder or a registered repository."""
    from appflow.engine.repos import add_app

    with store_session() as store:
        add_app(store, name=name, local=local, repo=repo_name, path=path)
    console.print(f"app {name} added")


@app.command("list")
@output_option
def app_list(output: str) -> None:
    """Show registered apps."""
    with store_session() as store:
        data = []
        for a in store.list_apps():
            deployments = store.list_deployments(app=a.name)
            data.append(
                {
                    "name": a.name,
                    "source": a.repo or a.local_path,
                    "path": a.path,
                    "paused": a.paused,
                    "clusters": len(deployments),
                    "ready": sum(1 for d in deployments if d.state == "Ready"),
                }
            )
    emit(
        data,
        output=output,
        columns=("NAME", "SOURCE", "PATH", "READY", "PAUSED"),
        rows=lambda d: [
            [
                x["name"],
                str(x["source"]),
                x["path"] or ".",
                f"{x['ready']}/{x['clusters']}",
                "yes" if x["paused"] else "",
            ]
            for x in d
        ],
    )


_observe_options = [
    click.option(
        "--cached", is_flag=True, help="Show what was recorded, without asking the clusters."
    ),
    click.option(
        "--timeout",
        type=float,
        default=5.0,
        show_default=True,
        help="Seconds each cluster has to answer; a silent one shows its recorded state.",
    ),
]


def _with_observe_options(f: Any) -> Any:
    for option in reversed(_observe_options):
        f = option(f)
    return f


def _observed(
    apps: Sequence[str] | None, *, cached: bool, timeout: float
) -> tuple[list[DeploymentRecord], dict[tuple[str, str], bool] | None]:
    """The Deployments of APPS (all when None): read again from their clusters
    (concurrently, each within TIMEOUT), or as recorded with CACHED."""
    with store_session() as store:
        if apps is None:
            recorded = store.list_deployments()
        else:
            recorded = [d for name in apps for d in store.list_deployments(app=name)]
    if cached or not recorded:
        # Nothing to read from a cluster: the engine and the Kubernetes client stay unloaded.
        return recorded, None
    # Every request gets the same bound, so a cluster that never answers holds
    # no thread (nor the exit of this command) beyond it.
    with engine_session(request_timeout=timeout) as engine:
        found = run(engine.observe(apps=apps, timeout=timeout))
    return [o.record for o in found], {(o.record.app, o.record.cluster): o.refreshed for o in found}


@app.command("show")
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@_with_observe_options
def app_show(name: str, output: str, cached: bool, timeout: float) -> None:
    """Show app NAME: its source, deployments and their failing objects."""
    from appflow import redaction
    from appflow.model.redact import shown_secrets

    deployments, refreshed = _observed([name], cached=cached, timeout=timeout)
    with store_session() as store:
        a = store.get_app(name)
        latest = store.latest_revision(name)
        # A sync refused before any change (a chart repository out of reach, a
        # render error) leaves no deployment record: its outcome is shown here.
        last = next(
            (
                e
                for e in reversed(store.list_events(app=name, limit=20))
                if e.kind in ("sync", "failure")
            ),
            None,
        )
        data = {
            "name": a.name,
            "source": a.source,
            "repo": a.repo,
            "localPath": a.local_path,
            "path": a.path,
            "paused": a.paused,
            "pinnedRevision": a.pinned_revision,
            "latestRevision": latest.number if latest else None,
            "deployments": [
                {
                    "cluster": d.cluster,
                    "state": d.state,
                    "appliedRevision": d.applied_revision,
                    "message": d.message,
                    "resources": d.resource_counts.as_dict(),
                    "failing": [{"object": f.object, "message": f.message} for f in d.failing],
                    **(
                        {"refreshed": refreshed.get((d.app, d.cluster), False)}
                        if refreshed is not None
                        else {}
                    ),
                }
                for d in deployments
            ],
            # Secret values of the latest revision as digests: a change shows, a value never.
            "secrets": shown_secrets(latest.rendered, redaction.redactor()) if latest else [],
            "lastSync": None
            if last is None
            else {
                "time": last.time.isoformat(),
                "cluster": last.cluster,
                "outcome": last.outcome,
                "message": last.message,
            },
        }
    emit(data, output=output)


def _do_sync(ask: SyncAsk, output: str) -> None:
    from appflow.cli.common import chosen_hub
    from appflow.cli.syncing import run_sync

    # A running `appflow serve` of this home does it with its warm engine; --debug keeps
    # the sync here, so its log is this terminal's; a hub's syncs are its own.
    code = run_sync(ask, output=output, hand_over_allowed=not _debugging() and chosen_hub() is None)
    if code:
        sys.exit(code)


def _debugging() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.find_root().params.get("debug"))


_sync_options = [
    click.option(
        "--cluster",
        "clusters",
        multiple=True,
        help="Only these clusters (among the app's targets).",
    ),
    click.option(
        "--force-conflicts", is_flag=True, help="Take over fields owned by other field managers."
    ),
    click.option(
        "--take-ownership",
        is_flag=True,
        help="Move objects another app owns to this app (once; they leave that app's inventory).",
    ),
    click.option(
        "--wait", is_flag=True, help="Wait until Healthy; exit 1 if it is not within --timeout."
    ),
    click.option(
        "--timeout", type=float, default=300.0, show_default=True, help="Seconds --wait waits."
    ),
    click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=SyncAsk().lock_timeout,
        show_default=True,
        help="Seconds to wait for another sync of the same app on a cluster (0: fail at once).",
    ),
    output_option,
]


def _with_sync_options(f: Any) -> Any:
    for option in reversed(_sync_options):
        f = option(f)
    return f


@app.command("sync")
@click.argument("names", nargs=-1)
@click.option("--all", "all_apps", is_flag=True, help="Sync every registered app.")
@_with_sync_options
def app_sync(
    names: tuple[str, ...],
    all_apps: bool,
    clusters: tuple[str, ...],
    force_conflicts: bool,
    take_ownership: bool,
    wait: bool,
    timeout: float,
    lock_timeout: float,
    output: str,
) -> None:
    """Render, validate on every target, then apply app NAME(s).

    Several names are synced one after another; --all syncs every app, those that do not
    depend on each other at once. When `appflow serve` runs for this appflow home, it
    does the sync (its engine is warm) and this command prints what it did.
    """
    ask = SyncAsk(
        names=names,
        all_apps=all_apps,
        clusters=clusters,
        force_conflicts=force_conflicts,
        take_ownership=take_ownership,
        wait=wait,
        timeout=timeout,
        lock_timeout=lock_timeout,
    )
    _do_sync(ask, output)


# `appflow sync` is the same command as `appflow app sync`, at the top level.
sync = app_sync


@app.command("diff")
@click.argument("name")
@click.option("--cluster", "clusters", multiple=True, help="Only these clusters.")
def app_diff(name: str, clusters: tuple[str, ...]) -> None:
    """Show what a sync of app NAME would change, as unified YAML diffs. Exit 1 when it differs."""
    from appflow.engine.stages.types import SyncBlocked
    from appflow.model.plan import Action

    with engine_session() as engine:
        try:
            plans = run(engine.diff(name, clusters=clusters))
        except SyncBlocked as err:
            raise ConfigError(str(err)) from None
    differs = False
    for cluster, plan in plans.items():
        console.print(f"[bold]# {name} on {cluster}: {plan.summary()}[/]", highlight=False)
        for change in plan.changes:
            if change.action in (Action.UNCHANGED,):
                continue
            differs = True
            if change.diff:
                click.echo(change.diff.rstrip("\n"))
            else:
                click.echo(f"# {change.ref}: {change.action.value} ({change.reason})")
    if differs:
        sys.exit(1)


@app.command("history")
@click.argument("name")
@click.option("--limit", type=int, default=20, show_default=True)
@output_option
def app_history(name: str, limit: int, output: str) -> None:
    """Show the revisions of app NAME and the syncs of each."""
    with store_session() as store:
        store.get_app(name)
        revisions = {r.number: r for r in store.list_revisions(name)}
        data = [
            {
                "id": s.id,
                "revision": s.revision,
                "source": str(revisions[s.revision].source_ref)[:12]
                if s.revision in revisions
                else "-",
                "cluster": s.cluster,
                "trigger": s.trigger,
                "actor": s.actor,
                "started": s.started_at.isoformat(timespec="seconds"),
                "outcome": s.outcome,
                "counts": s.counts,
                "message": s.message,
            }
            for s in store.list_syncs(name, limit=limit)
        ]
    emit(
        data,
        output=output,
        columns=("REVISION", "SOURCE", "CLUSTER", "BY", "STARTED", "OUTCOME", "MESSAGE"),
        rows=lambda d: [
            [
                str(x["revision"] or "-"),
                x["source"],
                x["cluster"],
                x["actor"] or x["trigger"],  # SyncRecord.asked_by
                x["started"],
                x["outcome"],
                x["message"][:80],
            ]
            for x in d
        ],
    )


@app.command("rollback")
@click.argument("name")
@click.option(
    "--to", "to", type=int, required=True, help="Revision number (see `appflow app history`)."
)
@click.option("--wait", is_flag=True)
@click.option("--timeout", type=float, default=300.0, show_default=True)
def app_rollback(name: str, to: int, wait: bool, timeout: float) -> None:
    """Re-apply revision --to of app NAME as it was rendered; pins the app there."""
    from appflow.engine.stages.types import SyncOptions

    with engine_session() as engine, err_console.status("rolling back...") as status:
        report = run(
            engine.rollback(
                name,
                to=to,
                options=SyncOptions(wait=wait, wait_timeout=timeout),
                progress=status.update,
            )
        )
    print_report(report.summary())
    console.print(
        f"app {name} is pinned to revision {to}: no sync moves it from there; "
        f"`appflow app resume {name}` returns it to the source's revision",
        highlight=False,
    )
    if not report.ok or (wait and not report.ready):
        sys.exit(1)


@app.command("resume")
@click.argument("name")
@click.option(
    "--wait", is_flag=True, help="Wait until Healthy; exit 1 if it is not within --timeout."
)
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds --wait waits."
)
def app_resume(name: str, wait: bool, timeout: float) -> None:
    """Unpin app NAME after a rollback and sync the source's revision; syncs follow it again."""
    from appflow.engine.stages.types import SyncOptions
    from appflow.model.appdef import SyncPolicy

    def options(policy: SyncPolicy) -> SyncOptions:
        return SyncOptions(
            prune=policy.prune,
            force_conflicts=policy.force_conflicts,
            wait=wait,
            wait_timeout=timeout,
        )

    with engine_session() as engine, err_console.status("resuming...") as status:
        report = run(engine.resume(name, options_from_policy=options, progress=status.update))
    print_report(report.summary())
    if not report.ok or (wait and not report.ready):
        sys.exit(1)


@app.command("delete")
@click.argument("name")
@click.option(
    "--keep-objects", is_flag=True, help="Forget the app but leave its objects on the clusters."
)
def app_delete(name: str, keep_objects: bool) -> None:
    """Delete app NAME: prune everything it owns on every cluster, then forget it."""
    with engine_session() as engine:
        store = engine.store
        store.get_app(name)
        if not keep_objects:
            reports = run(engine.uninstall(name))
            summary = reports.summary()
            print_problems(summary)
            for c in summary.clusters:
                console.print(f"{c.cluster}: {_removal(c)}", highlight=False)
                print_notes(c)
            if not reports.ok:
                raise ConfigError(
                    f"app {name} was not deleted: it could not be removed from every cluster "
                    "(see above)"
                )
        with contextlib.suppress(NotFoundError):
            store.delete_app(name, with_deployments=True)
    console.print(f"deleted app {name}")


def _removal(c: ClusterSummary) -> str:
    """What deleting the app did on one cluster, e.g. 'pruned 3 objects'."""
    kept = c.counts.get("kept", 0)
    done = [f"pruned {c.pruned} objects"] if c.pruned or not kept else []
    if kept:
        done.append(f"kept {kept} objects (keepResources)")
    return ", ".join(done)


@app.command("test")
@click.argument("name")
@click.option("--cluster", "clusters", multiple=True, help="Only these clusters.")
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds each test may take."
)
@output_option
def app_test(name: str, clusters: tuple[str, ...], timeout: float, output: str) -> None:
    """Run app NAME's tests (Helm test hooks) on each cluster it is deployed to.

    Exit 1 when a test fails anywhere. A sync never runs tests.
    """
    with engine_session() as engine, err_console.status("testing..."):
        report = run(engine.run_tests(name, clusters=clusters, timeout=timeout))
    if output != "table":
        emit(
            {
                "app": name,
                "clusters": [
                    {
                        "cluster": r.cluster,
                        "passed": r.passed,
                        "tests": r.tests,
                        "hooks": [hook_data(hook_note(h)) for h in r.runs],
                        "errors": [str(e) for e in r.errors],
                    }
                    for r in report.results
                ],
                "failed": {c: str(e) for c, e in report.failed.items()},
            },
            output=output,
        )
    else:
        for cluster, err in sorted(report.failed.items()):
            err_console.print(f"[red]{cluster}:[/] {err}", highlight=False)
        for r in report.results:
            verdict = "[green]passed[/]" if r.passed else "[red]failed[/]"
            if not r.tests:
                verdict = "no tests"
            console.print(f"{name} -> {r.cluster}: {verdict}", highlight=False)
            for run_ in r.runs:
                console.print(f"    {run_}", highlight=False)
            for err in r.errors:
                console.print(f"    {err.message}", highlight=False)
    if not report.ok:
        sys.exit(1)


@click.command()
@_with_observe_options
@output_option
def status(cached: bool, timeout: float, output: str) -> None:
    """The apps x clusters grid: each Deployment's state."""
    from appflow.cli.common import chosen_hub
    from appflow.cli.handover import status_of_serve

    # A running `appflow serve` of this home reads the clusters with its warm engine
    # (--debug keeps it here, so its log is this terminal's); a hub is not its to read.
    data = (
        None
        if _debugging() or chosen_hub() is not None
        else status_of_serve(cached=cached, timeout=timeout)
    )
    if data is None:
        data = _status_here(cached=cached, timeout=timeout)
    print_status(data, output=output)


def _status_here(*, cached: bool, timeout: float) -> dict[str, Any]:
    """The grid of `appflow status`, read in this process (no daemon answered)."""
    from appflow.model.status import status_grid

    deployments, refreshed = _observed(None, cached=cached, timeout=timeout)
    with store_session() as store:
        return status_grid(
            store.list_apps(), store.list_clusters(), deployments, refreshed=refreshed
        )


@click.group()
def rollout() -> None:
    """Progressive rollouts across clusters: status, pause, resume."""


@rollout.command("status")
@click.argument("name")
@output_option
def rollout_status(name: str, output: str) -> None:
    """Show the partitions of app NAME's current rollout and where it stands."""
    with store_session() as store:
        r = store.get_rollout(name)
    data = r.to_data()
    if output != "table":
        emit(data, output=output)
        return
    console.print(
        f"rollout of {r.app} revision {r.revision}: [bold]{r.state}[/] {r.message}", highlight=False
    )
    emit(
        data["partitions"],
        output="table",
        columns=("PARTITION", "CLUSTERS", "MAX UNAVAILABLE", "STATE", "MESSAGE"),
        rows=lambda d: [
            [
                p["name"],
                ", ".join(p["clusters"]),
                str(p["maxUnavailable"]),
                p["state"],
                p["message"],
            ]
            for p in d
        ],
    )


@rollout.command("pause")
@click.argument("name")
def rollout_pause(name: str) -> None:
    """Stop app NAME's rollout before its next batch of clusters."""

    from appflow.engine.rollouts import pause_rollout

    with store_session() as store:
        pause_rollout(store, name)
    console.print(f"rollout of {name} paused")


@rollout.command("resume")
@click.argument("name")
@click.option("--wait", is_flag=True)
@click.option("--timeout", type=float, default=300.0, show_default=True)
def rollout_resume(name: str, wait: bool, timeout: float) -> None:
    """Continue app NAME's rollout (clusters already updated re-sync as no-ops)."""

    from appflow.engine.rollouts import resume_rollout

    with store_session() as store:
        resume_rollout(store, name)
    _do_sync(SyncAsk(names=(name,), wait=wait, timeout=timeout), "table")
