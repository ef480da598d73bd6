"""`appflow hub ...` (install, uninstall, crds) and `appflow controller`: hub mode (docs/hub.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appflow.cli.common import log_progress, run
from appflow.errors import ConfigError
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


def _service_kube_options(func: click.decorators.FC) -> click.decorators.FC:
    """--kubeconfig and --context of a service that runs in the hub (controller, agent API)."""
    func = click.option("--context", help="The kubeconfig context.")(func)
    return click.option(
        "--kubeconfig",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The hub's kubeconfig (default: the pod's ServiceAccount).",
    )(func)


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
@click.option(
    "--agent-api-url",
    help="Also run the agents' API (pull clusters), reached by agents at this https://HOST:PORT.",
)
@click.option("--hub-server", help="The hub API server's URL as pull agents reach it.")
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
    agent_api_url: str | None,
    hub_server: str | None,
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
        agent_api_url=agent_api_url,
        hub_server=hub_server,
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
@_service_kube_options
@click.option(
    "--namespace", default=SYSTEM_NAMESPACE, show_default=True, help="Where the Leases are."
)
@click.option(
    "--workspace",
    default=DEFAULT_WORKSPACE,
    show_default=True,
    help="The namespace whose AppFlows, repos and clusters to serve.",
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
@click.option("--workers", type=int, default=4, show_default=True, help="Apps reconciled at once.")
@click.option(
    "--resync-seconds",
    type=float,
    default=600.0,
    show_default=True,
    help="Every app is synced again this often (drift, missed events).",
)
@click.option(
    "--poll-seconds", type=float, help="Poll every GitRepo this often (default: its own)."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where kubeconfigs and source snapshots are written (default: the data folder).",
)
@click.option(
    "--revision-history-limit", type=int, default=20, show_default=True, help="Per AppFlow."
)
@click.option(
    "--sync-history-limit", type=int, default=10, show_default=True, help="Per Deployment."
)
@click.option(
    "--lease-kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    hidden=True,
    help="Another way to the same hub for the Lease traffic alone (tests cut only that way).",
)
def controller(
    kubeconfig: Path | None,
    context: str | None,
    namespace: str,
    workspace: str,
    lease_duration: int,
    listen: str | None,
    identity: str,
    workers: int,
    resync_seconds: float,
    poll_seconds: float | None,
    state_dir: Path | None,
    revision_history_limit: int,
    sync_history_limit: int,
    lease_kubeconfig: Path | None,
) -> None:
    """Run one replica of the hub controller; run several, they share the AppFlows by Leases."""
    from appflow.hub.controller import ControllerOptions, run_controller

    if not workspace:
        # A replica serves one workspace: its work keys, watches and Deployments' labels name it.
        raise click.BadParameter(
            f"name the hub namespace of the apps (default: {DEFAULT_WORKSPACE})",
            param_hint="--workspace",
        )

    # A replica says what it takes and releases (the root handler, set up by the `appflow`
    # group, scrubs every line); --debug still shows everything.
    log_progress()
    options = ControllerOptions(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        workspace=workspace,
        lease_duration=lease_duration,
        listen=listen,
        identity=identity,
        workers=workers,
        resync_seconds=resync_seconds,
        poll_seconds=poll_seconds,
        state_dir=state_dir,
        revision_limit=revision_history_limit,
        history_limit=sync_history_limit,
        lease_kubeconfig=lease_kubeconfig,
    )
    run(run_controller(options))


@hub.command("use")
@click.argument("hub_ref", metavar="KUBECONFIG[:CONTEXT]", required=False)
@click.option("--workspace", help="The hub namespace of the apps and clusters (default: appflow).")
@click.option("--standalone", is_flag=True, help="Forget the saved hub: work standalone again.")
def use_command(hub_ref: str | None, workspace: str | None, standalone: bool) -> None:
    """Make later commands work on this hub (as --hub does for one command)."""
    from appflow.hub.backend import parse_hub, save_hub

    if standalone == bool(hub_ref):
        raise ConfigError("give KUBECONFIG[:CONTEXT], or --standalone")
    if standalone:
        save_hub(None)
        click.echo("commands work on the standalone store again")
        return
    assert hub_ref is not None
    target = parse_hub(hub_ref, workspace=workspace, option="KUBECONFIG")
    save_hub(target)
    click.echo(f"commands work on the hub {target.describe()}")


@hub.command("import")
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The standalone store to copy (default: this machine's).",
)
def import_command(source: Path | None) -> None:
    """Copy a standalone store's clusters, groups, repos, apps and catalog installs to the hub.

    The hub is the one --hub, APPFLOW_HUB or `appflow hub use` names; kubeconfigs go into
    Secrets, local folders and local charts are uploaded. The standalone store is only read.
    """
    from appflow.cli.common import chosen_hub
    from appflow.hub.backend import open_hub_store
    from appflow.hub.importer import import_store
    from appflow.store import open_store

    target = chosen_hub()
    if target is None:
        raise ConfigError(
            "which hub? give --hub KUBECONFIG[:CONTEXT] (before `hub import`), set APPFLOW_HUB,"
            " or run `appflow hub use` first"
        )
    store = open_store(source)
    hub_store = open_hub_store(target)
    try:
        done = run(import_store(store, hub_store))
    finally:
        store.close()
        hub_store.close()
    for kind, names in (
        ("clusters", done.clusters),
        ("groups", done.groups),
        ("repos", done.repos),
        ("catalog repositories", done.catalog_repos),
        ("apps", done.apps),
        ("catalog installs", done.installs),
    ):
        click.echo(f"{kind}: {', '.join(names) or '-'}")
    click.echo(f"imported into {target.describe()}; {store.path} is unchanged")


@hub.command("agent-api")
@_service_kube_options
@click.option(
    "--workspace", default=DEFAULT_WORKSPACE, show_default=True, help="The clusters' namespace."
)
@click.option(
    "--namespace", default=SYSTEM_NAMESPACE, show_default=True, help="Where its TLS Secret is."
)
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="HOST:PORT to serve on.")
@click.option(
    "--advertise-url", required=True, help="https://HOST:PORT agents use to reach this API."
)
@click.option(
    "--hub-server", help="The hub API server's URL as agents reach it (default: the kubeconfig's)."
)
@click.option(
    "--hub-server-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its CA certificate (default: the kubeconfig's).",
)
@click.option(
    "--credential-ttl",
    default="90d",
    show_default=True,
    help="How long an agent's token lasts (it renews at half).",
)
def agent_api_command(
    kubeconfig: Path | None,
    context: str | None,
    workspace: str,
    namespace: str,
    listen: str,
    advertise_url: str,
    hub_server: str | None,
    hub_server_ca: Path | None,
    credential_ttl: str,
) -> None:
    """Serve the agents' API: registration (token for credential) and content, over HTTPS."""
    from appflow.model.registration import parse_duration
    from appflow.server.agent_api import AgentApiOptions, serve_agent_api

    log_progress()
    run(
        serve_agent_api(
            AgentApiOptions(
                kubeconfig=kubeconfig,
                context=context,
                workspace=workspace,
                namespace=namespace,
                listen=listen,
                advertise_url=advertise_url,
                server=hub_server,
                server_ca=hub_server_ca,
                credential_ttl=parse_duration(credential_ttl, option="--credential-ttl"),
            )
        )
    )
