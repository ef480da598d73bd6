"""`appflow cluster` and `appflow group`: the registry of sync targets."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from appflow import sandbox as sb
from appflow.cli.common import chosen_hub, parse_labels, run, store_session
from appflow.cli.output import console, emit, format_labels, output_option
from appflow.engine.clusters import (
    add_cluster,
    add_group,
    check_cluster,
    label_cluster,
    list_groups,
    remove_cluster,
    remove_group,
)
from appflow.errors import ConfigError
from appflow.model.records import ClusterRecord


def cluster_data(c: ClusterRecord) -> dict[str, Any]:
    data = asdict(c)
    data.pop("kubeconfig_path")  # credentials are never printed, nor where they are
    return data


def _rows(data: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            d["name"],
            d["kind"],
            d["state"] + (f" ({d['state_reason']})" if d["state_reason"] else ""),
            d.get("k8s_version") or "-",
            d.get("mode") or "-",
            format_labels(
                {k: v for k, v in d["labels"].items() if not k.startswith("appflow.dev/")}
            ),
        ]
        for d in data
    ]


@click.group()
def cluster() -> None:
    """Register, inspect and remove clusters (sync targets)."""


@cluster.command("add")
@click.argument("name", required=False)
@click.option(
    "--kind", type=click.Choice(["eve-k", "imported"]), default="imported", show_default=True
)
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--context", help="Context of the kubeconfig to use (default: its current context).")
@click.option("-l", "--label", "labels", multiple=True, help="Label k=v (repeatable).")
@click.option(
    "--from-sandbox", is_flag=True, help="Register every running sandbox cluster with its labels."
)
@click.option(
    "--mode",
    type=click.Choice(["push", "pull"]),
    default="push",
    show_default=True,
    help="push: appflow applies with --kubeconfig. pull: on a hub (--hub), the cluster's agent"
    " pulls; prints its one-time registration token and install command.",
)
@click.option(
    "--ttl", default="1h", show_default=True, help="How long the one-time token works (pull mode)."
)
@output_option
def add(
    name: str | None,
    kind: str,
    kubeconfig: Path | None,
    context: str | None,
    labels: tuple[str, ...],
    from_sandbox: bool,
    mode: str,
    ttl: str,
    output: str,
) -> None:
    """Register cluster NAME after checking that appflow can reach it (push), or create it on
    a hub for its agent to register (pull)."""
    extra = parse_labels(labels)
    if mode == "pull":
        from appflow.cli.agent import add_pull_cluster

        if not name or kubeconfig is not None or from_sandbox:
            raise ConfigError("pull mode takes NAME and no --kubeconfig: the agent connects")
        add_pull_cluster(name=name, kind=kind, labels=extra, ttl=ttl)
        return
    added: list[ClusterRecord] = []
    with store_session() as store:
        if from_sandbox:
            running = [i for i in sb.list_sandbox() if i.status == "Running"]
            if not running:
                raise ConfigError(
                    "no sandbox cluster is running", hint="start some: appflow sandbox up"
                )
            for info in running:
                # Re-registering refreshes credentials: a re-created sandbox
                # cluster has new certificates and ports.
                added.append(
                    run(
                        add_cluster(
                            store,
                            name=info.name,
                            kind=kind,  # type: ignore[arg-type]
                            kubeconfig=info.kubeconfig,
                            labels={**info.labels, **extra},
                            refresh=True,
                        )
                    )
                )
        else:
            if not name or kubeconfig is None:
                raise ConfigError("give NAME and --kubeconfig FILE, or --from-sandbox")
            added.append(
                run(
                    add_cluster(
                        store,
                        name=name,
                        kind=kind,  # type: ignore[arg-type]
                        kubeconfig=kubeconfig,
                        context=context,
                        labels=extra,
                    )
                )
            )
    data = [cluster_data(c) for c in added]
    emit(
        data,
        output=output,
        columns=("NAME", "KIND", "STATE", "VERSION", "MODE", "LABELS"),
        rows=_rows,
    )


@cluster.command("list")
@output_option
def list_clusters(output: str) -> None:
    """Show registered clusters with their state and labels."""
    with store_session() as store:
        data = [cluster_data(c) for c in store.list_clusters()]
    emit(
        data,
        output=output,
        columns=("NAME", "KIND", "STATE", "VERSION", "MODE", "LABELS"),
        rows=_rows,
    )


@cluster.command("show")
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
def show(name: str, output: str) -> None:
    """Show everything known about cluster NAME (never its credentials)."""
    with store_session() as store:
        record = store.get_cluster(name)
        data = cluster_data(record)
        data["deployments"] = [
            {"app": d.app, "state": d.state, "revision": d.applied_revision, "message": d.message}
            for d in store.list_deployments(cluster=name)
        ]
    emit(data, output=output)


@cluster.command("check")
@click.argument("names", nargs=-1)
@output_option
def check(names: tuple[str, ...], output: str) -> None:
    """Probe reachability, version and node readiness; record what was seen."""
    with store_session() as store:
        records = [store.get_cluster(n) for n in names] if names else store.list_clusters()
        checked = [run(check_cluster(store, r)) for r in records]
    emit(
        [cluster_data(c) for c in checked],
        output=output,
        columns=("NAME", "KIND", "STATE", "VERSION", "MODE", "LABELS"),
        rows=_rows,
    )


@cluster.command("label")
@click.argument("name")
@click.argument("labels", nargs=-1, required=True)
def label(name: str, labels: tuple[str, ...]) -> None:
    """Set labels (k=v) or remove them (k-) on cluster NAME."""
    remove = [item[:-1] for item in labels if item.endswith("-") and "=" not in item]
    given = tuple(item for item in labels if not (item.endswith("-") and "=" not in item))
    with store_session() as store:
        record = label_cluster(
            store, name=name, set_labels=parse_labels(given, option="label"), remove=remove
        )
    console.print(f"{name}: {format_labels(record.labels)}")


@cluster.command("remove")
@click.argument("name")
@click.option(
    "--force",
    is_flag=True,
    help="Also forget the apps' deployments on it (objects stay on the cluster).",
)
def remove(name: str, force: bool) -> None:
    """Unregister cluster NAME (its objects are left as they are). On a hub, a pull cluster's
    agent credential is revoked at once, with its namespace and what it holds."""
    if chosen_hub() is not None:
        from appflow.cli.agent import remove_pull_cluster

        if remove_pull_cluster(name):
            return
    with store_session() as store:
        remove_cluster(store, name, force=force)
    console.print(f"removed {name}")


@click.group()
def group() -> None:
    """Cluster groups: named label selectors over clusters."""


@group.command("add")
@click.argument("name")
@click.option(
    "--selector",
    "-l",
    required=True,
    help="kubectl-style selector, e.g. 'env=prod,region in (eu,us)'.",
)
def group_add(name: str, selector: str) -> None:
    """Define group NAME as the clusters SELECTOR matches."""
    with store_session() as store:
        members = add_group(store, name=name, selector=selector)
    console.print(f"group {name}: {', '.join(members) or 'no cluster matches yet'}")


@group.command("list")
@output_option
def group_list(output: str) -> None:
    """Show cluster groups and their members."""
    with store_session() as store:
        data = [
            {"name": g.name, "selector": g.selector, "clusters": members}
            for g, members in list_groups(store)
        ]
    emit(
        data,
        output=output,
        columns=("NAME", "SELECTOR", "CLUSTERS"),
        rows=lambda d: [[x["name"], x["selector"], ", ".join(x["clusters"]) or "-"] for x in d],
    )


@group.command("remove")
@click.argument("name")
def group_remove(name: str) -> None:
    """Delete group NAME (apps that target it then match no cluster through it)."""
    with store_session() as store:
        remove_group(store, name=name)
    console.print(f"removed group {name}")
