"""`appflow hub ...` (install, uninstall, crds) and `appflow controller`: hub mode (docs/hub.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appflow.cli.common import run
from appflow.model.hub import DEFAULT_WORKSPACE, SYSTEM_NAMESPACE


@click.group()
def hub() -> None:
    """Hub mode: appflow's state as custom resources in a management cluster."""


def _hub_options(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option(
                "--kubeconfig",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                required=True,
                help="The hub cluster's kubeconfig.",
            ),
            click.option("--context", help="The kubeconfig context (default: its current one)."),
            click.option(
                "--namespace",
                default=SYSTEM_NAMESPACE,
                show_default=True,
                help="Where the controller runs.",
            ),
            click.option(
                "--workspace",
                default=DEFAULT_WORKSPACE,
                show_default=True,
                help="The namespace for Clusters, GitRepos and AppFlows.",
            ),
            click.option("--release", default="appflow-hub", show_default=True, hidden=True),
        ]
    ):
        func = option(func)
    return func


@hub.command("install")
@_hub_options
@click.option("--replicas", type=int, default=2, show_default=True, help="Controller replicas.")
@click.option("--image", help="appflow's image, REPOSITORY:TAG (default: the chart's).")
@click.option(
    "--lease-duration",
    type=int,
    default=15,
    show_default=True,
    help="Seconds before a dead replica's work moves to the others.",
)
@click.option("--wait/--no-wait", default=True, help="Wait until the controller is available.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait.")
def install_command(
    kubeconfig: Path,
    context: str | None,
    namespace: str,
    workspace: str,
    release: str,
    replicas: int,
    image: str | None,
    lease_duration: int,
    wait: bool,
    timeout: float,
) -> None:
    """Install (or upgrade) the hub on the cluster of --kubeconfig: CRDs, RBAC, the controller."""
    from appflow.hub.install import HubOptions, install
    from appflow.kube.client import Connection, KubeCluster

    options = HubOptions(
        release=release,
        namespace=namespace,
        workspace=workspace,
        replicas=replicas,
        image=image,
        lease_duration=lease_duration,
    )
    kube = KubeCluster(Connection(name="hub", kubeconfig=kubeconfig, context=context))
    try:
        objects = run(
            install(kube, options, wait=wait, timeout=timeout, progress=lambda m: click.echo(m))
        )
    finally:
        kube.close()
    click.echo(
        f"hub installed: {len(objects)} objects, {replicas} controller replica(s) in {namespace},"
        f" workspace {workspace}"
    )


@hub.command("uninstall")
@_hub_options
@click.option(
    "--force",
    is_flag=True,
    help="Also when AppFlows, Clusters or repos exist: they are deleted with the hub.",
)
def uninstall_command(
    kubeconfig: Path,
    context: str | None,
    namespace: str,
    workspace: str,
    release: str,
    force: bool,
) -> None:
    """Remove what `appflow hub install` created (refused while the hub holds AppFlows)."""
    from appflow.hub.install import HubOptions, uninstall
    from appflow.kube.client import Connection, KubeCluster

    options = HubOptions(release=release, namespace=namespace, workspace=workspace)
    kube = KubeCluster(Connection(name="hub", kubeconfig=kubeconfig, context=context))
    try:
        deleted = run(uninstall(kube, options, force=force, progress=lambda m: click.echo(m)))
    finally:
        kube.close()
    click.echo(f"hub uninstalled: {len(deleted)} objects deleted")


@hub.command("crds")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per CRD here (default: a YAML stream on stdout).",
)
def crds_command(output_dir: Path | None) -> None:
    """The hub's CustomResourceDefinitions, generated from appflow's JSON Schemas."""
    from appflow.hub.crds import crd_file_name, crd_manifest_of, crd_yaml
    from appflow.model.hub import KINDS

    texts = [(crd_file_name(kind), crd_yaml(crd_manifest_of(kind))) for kind in KINDS]
    if output_dir is None:
        sys.stdout.write("---\n".join(text for _, text in texts))
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts:
        (output_dir / name).write_text(text)
    click.echo(f"wrote {len(texts)} CRDs to {output_dir}")


@click.command()
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The hub's kubeconfig (default: the pod's ServiceAccount).",
)
@click.option("--context", help="The kubeconfig context.")
@click.option(
    "--namespace", default=SYSTEM_NAMESPACE, show_default=True, help="Where the Leases are."
)
@click.option(
    "--workspace",
    default=DEFAULT_WORKSPACE,
    show_default=True,
    help="The namespace whose AppFlows to serve ('' for every namespace).",
)
@click.option(
    "--lease-duration",
    type=int,
    default=15,
    show_default=True,
    help="Seconds a replica's Lease lasts: its work moves this long after it dies.",
)
@click.option("--listen", help="HOST:PORT for /healthz and /readyz.")
@click.option(
    "--identity", default="", help="This replica's member name (default: POD_NAME + random)."
)
def controller(
    kubeconfig: Path | None,
    context: str | None,
    namespace: str,
    workspace: str,
    lease_duration: int,
    listen: str | None,
    identity: str,
) -> None:
    """Run one replica of the hub controller; run several, they share the AppFlows by Leases."""
    import logging

    from appflow.hub.controller import ControllerOptions, run_controller

    # A replica says what it takes and releases (the root handler, set up by the `appflow`
    # group, scrubs every line); --debug still shows everything.
    appflow_log = logging.getLogger("appflow")
    if appflow_log.getEffectiveLevel() > logging.INFO:
        appflow_log.setLevel(logging.INFO)
    options = ControllerOptions(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        workspace=workspace or None,
        lease_duration=lease_duration,
        listen=listen,
        identity=identity,
    )
    run(run_controller(options))
