"""`appflow sandbox`: start, list and stop local Kubernetes clusters."""

from __future__ import annotations

from typing import Any

import click

from appflow import sandbox as sb
from appflow.cli.common import parse_labels
from appflow.cli.output import console, emit, err_console, format_labels, output_option


def _as_data(infos: list[sb.SandboxInfo]) -> list[dict[str, Any]]:
    return [
        {
            "name": i.name,
            "status": i.status,
            "server": i.server,
            "kubeconfig": str(i.kubeconfig),
            "labels": dict(i.labels),
            "processes": dict(i.processes),
            "k3sLike": i.k3s_like,
            "problem": i.problem,
        }
        for i in infos
    ]


def _rows(data: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            d["name"],
            d["status"],
            d["server"] or "-",
            "yes" if d["k3sLike"] else "no",
            format_labels(d["labels"]),
            d["problem"] or "",
        ]
        for d in data
    ]


@click.group()
def sandbox() -> None:
    """A fleet of real Kubernetes clusters on this machine (etcd, kube-apiserver,
    controller manager, scheduler, and kwok simulating nodes and pods)."""


@sandbox.command()
@click.option("--clusters", "count", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option(
    "--prefix", default="sandbox", show_default=True, help="Cluster names are PREFIX-1..N."
)
@click.option("-l", "--label", "labels", multiple=True, help="Extra label k=v for every cluster.")
@click.option(
    "--nodes",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Simulated nodes per cluster.",
)
@click.option(
    "--k3s-like",
    "k3s_like",
    type=click.BOOL,
    default=None,
    metavar="true|false",
    help="Give what K3s (EVE-k's base) gives: LoadBalancer Services get the node addresses "
    "(ServiceLB) and Ingresses of the default IngressClass 'traefik' get them too (Traefik). "
    "New clusters: true. Existing clusters keep their setting unless this is given.",
)
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="Seconds to wait for each cluster.",
)
@output_option
def up(
    count: int,
    prefix: str,
    labels: tuple[str, ...],
    nodes: int,
    k3s_like: bool | None,
    timeout: float,
    output: str,
) -> None:
    """Start clusters PREFIX-1..N (running ones are left alone)."""
    extra = parse_labels(labels)
    # Progress goes to stderr so that `-o json` output stays machine-readable.
    with err_console.status("starting sandbox clusters...") as status:

        def progress(message: str) -> None:
            status.update(message)
            err_console.log(message)

        infos = sb.up(
            clusters=count,
            prefix=prefix,
            labels=extra,
            nodes=nodes,
            k3s_like=k3s_like,
            timeout=timeout,
            progress=progress,
        )
    data = _as_data(infos)
    emit(
        data,
        output=output,
        columns=("NAME", "STATUS", "SERVER", "K3S-LIKE", "LABELS", ""),
        rows=_rows,
    )


@sandbox.command("list")
@output_option
def list_command(output: str) -> None:
    """Show the sandbox clusters and whether they run."""
    data = _as_data(sb.list_sandbox())
    emit(
        data,
        output=output,
        columns=("NAME", "STATUS", "SERVER", "K3S-LIKE", "LABELS", "PROBLEM"),
        rows=_rows,
    )


@sandbox.command()
@click.argument("names", nargs=-1)
def down(names: tuple[str, ...]) -> None:
    """Stop clusters and delete their data (all of them when no NAME is given)."""
    report = sb.down(names)
    for name in report.removed:
        console.print(f"removed {name}")
    for problem in report.problems:
        console.print(f"[yellow]warning:[/] {problem}")
    if not report.removed and not report.problems:
        console.print("no sandbox clusters")
    if report.problems:
        raise SystemExit(1)


@sandbox.command()
@click.argument("names", nargs=-1)
def stop(names: tuple[str, ...]) -> None:
    """Stop clusters but keep their data (all when no NAME is given)."""
    for name in sb.stop(names):
        console.print(f"stopped {name}")


@sandbox.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--timeout", type=float, default=180.0, show_default=True)
def start(names: tuple[str, ...], timeout: float) -> None:
    """Start stopped clusters again, with their data."""
    for info in sb.start(names, timeout=timeout, progress=err_console.log):
        console.print(f"{info.name}: {info.status}")


@sandbox.command()
@click.argument("name")
@click.option(
    "--path", "path_only", is_flag=True, help="Print the file's path instead of its content."
)
def kubeconfig(name: str, path_only: bool) -> None:
    """Print the kubeconfig of cluster NAME (use: export KUBECONFIG=$(appflow sandbox kubeconfig NAME --path))."""
    path = sb.kubeconfig(name)
    click.echo(str(path) if path_only else path.read_text(), nl=path_only)
