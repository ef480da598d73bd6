"""`appflow agent ...` (on an edge cluster) and the hub's side of pull-mode clusters:
`appflow cluster add --mode pull`, `cluster token create/list/revoke`,
`cluster rotate-credentials`, `cluster remove` on a hub (docs/hub.md §11)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from appflow.cli.common import log_progress, parse_labels, run
from appflow.cli.output import console, emit, format_labels, output_option
from appflow.errors import ConfigError

if TYPE_CHECKING:  # the Kubernetes client is imported only by the commands that use it
    from appflow.kube.client import KubeCluster


def hub_kube() -> tuple[KubeCluster, str]:
    """The hub the command works on (root --hub, APPFLOW_HUB or `appflow hub use`), and its
    workspace."""
    from appflow.cli.common import chosen_hub
    from appflow.kube.client import Connection, KubeCluster

    target = chosen_hub()
    if target is None:
        raise ConfigError(
            "pull-mode clusters live on a hub",
            hint="give --hub KUBECONFIG[:CONTEXT] before the command, set APPFLOW_HUB,"
            " or run `appflow hub use` first",
        )
    connection = Connection(name="hub", kubeconfig=target.kubeconfig, context=target.context)
    return KubeCluster(connection), target.workspace


def install_command(*, token: str, url: str, pin: str) -> str:
    return f"appflow agent install --token {token} --hub-url {url} --hub-ca-pin {pin}"


async def _endpoint_line(kube: KubeCluster, token: str) -> str:
    from appflow.errors import NotFoundError
    from appflow.hub.agent_tls import read_endpoint

    try:
        endpoint = await read_endpoint(kube)
    except NotFoundError as err:
        return f"(no agent API published on the hub yet: {err.hint})\n  appflow agent install --token {token} --hub-url URL --hub-ca-pin PIN"
    return install_command(token=token, url=endpoint.url, pin=endpoint.pin)


def add_pull_cluster(*, name: str, kind: str, labels: dict[str, str], ttl: str) -> None:
    """`appflow cluster add NAME --mode pull`: the Cluster and its one-time token."""
    from appflow.hub.registration import add_pull_cluster as add
    from appflow.model.registration import parse_duration

    kube, workspace = hub_kube()

    async def go() -> tuple[str, str]:
        token, _ = await add(
            kube, workspace=workspace, name=name, kind=kind, labels=labels, ttl=parse_duration(ttl)
        )
        return token, await _endpoint_line(kube, token)

    try:
        token, line = run(go())
    finally:
        kube.close()
    console.print(f"cluster {name} added in pull mode (state Init until its agent registers)")
    console.print(f"one-time registration token, valid {ttl} (shown once):\n  {token}")
    console.print(f"on the cluster, run:\n  {line}", soft_wrap=True)


def remove_pull_cluster(name: str) -> bool:
    """`appflow cluster remove NAME` on a hub: when NAME is a pull cluster, revoke its agent's
    credential and remove its namespace and the Cluster (False: it is not one)."""
    from appflow.hub.registration import remove_cluster
    from appflow.model.hub import API_VERSION

    kube, workspace = hub_kube()
    try:
        found = kube.get_sync(API_VERSION, "Cluster", name, workspace) or {}
        if (found.get("spec") or {}).get("mode") != "pull":
            return False
        run(remove_cluster(kube, workspace=workspace, name=name))
    finally:
        kube.close()
    console.print(f"removed {name}: its agent's credential no longer works")
    return True


# -- cluster token ----------------------------------------------------------------------------


@click.group("token")
def token() -> None:
    """Registration tokens: let agents register their clusters with the hub."""


@token.command("create")
@click.option(
    "--ttl", default="24h", show_default=True, help="How long the token works (30m, 24h, 7d)."
)
@click.option(
    "--max-uses",
    type=int,
    help="How many clusters may register with it (default: any until it expires).",
)
@click.option(
    "-l",
    "--label",
    "labels",
    multiple=True,
    help="Label k=v every cluster registering with it gets (repeatable).",
)
@click.option(
    "--kind", type=click.Choice(["eve-k", "imported"]), default="eve-k", show_default=True
)
@click.option(
    "--name-prefix",
    default="edge",
    show_default=True,
    help="Clusters are named PREFIX-<12 hex of their kube-system UID>.",
)
@click.option("--description", default="", help="What the token is for (shown by token list).")
def token_create(
    ttl: str,
    max_uses: int | None,
    labels: tuple[str, ...],
    kind: str,
    name_prefix: str,
    description: str,
) -> None:
    """A token many clusters can self-register with (zero-touch onboarding of a batch)."""
    from appflow.hub.registration import create_token
    from appflow.model.registration import parse_duration

    kube, workspace = hub_kube()

    async def go() -> tuple[str, str]:
        text, _ = await create_token(
            kube,
            workspace=workspace,
            ttl=parse_duration(ttl),
            max_uses=max_uses,
            labels=parse_labels(labels),
            kind=kind,
            name_prefix=name_prefix,
            description=description,
        )
        return text, await _endpoint_line(kube, text)

    try:
        text, line = run(go())
    finally:
        kube.close()
    uses = f"up to {max_uses} clusters" if max_uses else "any number of clusters"
    console.print(f"registration token for {uses}, valid {ttl} (shown once):\n  {text}")
    console.print(f"on each cluster, run:\n  {line}", soft_wrap=True)


@token.command("list")
@output_option
def token_list(output: str) -> None:
    """Registration tokens: uses, expiry, labels, state (never the secret)."""
    from datetime import UTC, datetime

    from appflow.hub.registration import list_tokens

    kube, workspace = hub_kube()
    try:
        tokens = run(list_tokens(kube, workspace=workspace))
    finally:
        kube.close()
    now = datetime.now(UTC)
    data = [
        {
            "id": t.id,
            "state": t.state(now),
            "cluster": t.cluster,
            "uses": t.uses,
            "maxUses": t.max_uses,
            "expires": t.expires.isoformat(),
            "labels": t.labels,
            "description": t.description,
        }
        for t in tokens
    ]
    emit(
        data,
        output=output,
        columns=("ID", "STATE", "USES", "EXPIRES", "CLUSTER", "LABELS"),
        rows=lambda d: [
            [
                x["id"],
                x["state"],
                f"{x['uses']}/{x['maxUses'] or '-'}",
                x["expires"],
                x["cluster"] or "(batch)",
                format_labels(x["labels"]),
            ]
            for x in d
        ],
    )


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a registration token at once (clusters registered with it keep working)."""
    from appflow.hub.registration import revoke_token

    kube, workspace = hub_kube()
    try:
        revoked = run(revoke_token(kube, workspace=workspace, token_id=token_id))
    finally:
        kube.close()
    console.print(f"revoked registration token {revoked.id}")


@click.command("rotate-credentials")
@click.argument("name")
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="Seconds to wait for the agent to switch.",
)
@click.option(
    "--revoke-now",
    is_flag=True,
    help="Revoke the old credential at once, switched or not (the agent must register again).",
)
def rotate_credentials(name: str, timeout: float, revoke_now: bool) -> None:
    """Give pull cluster NAME's agent a new credential, then revoke the old one (no downtime)."""
    from appflow.hub.registration import rotate_credentials as rotate

    kube, workspace = hub_kube()
    try:
        generation, done = run(
            rotate(kube, workspace=workspace, name=name, timeout=timeout, revoke_now=revoke_now)
        )
    finally:
        kube.close()
    if done:
        console.print(f"{name}: credential generation {generation} in use; older ones revoked")
    else:
        console.print(
            f"{name}: generation {generation} is ready, but the agent has not switched within"
            f" {timeout:.0f}s (it does at its next heartbeat); the old credential is revoked as"
            " soon as it has (by the hub controller), or now with --revoke-now"
        )


# -- appflow agent ----------------------------------------------------------------------------


@click.group()
def agent() -> None:
    """The pull agent: runs on an edge cluster and pulls its desired state from a hub."""


def _local_kube(kubeconfig: Path | None, context: str | None) -> KubeCluster:
    from appflow.kube.client import Connection, KubeCluster

    return KubeCluster(
        Connection(name="local", kubeconfig=kubeconfig, context=context, concurrency=8)
    )


@agent.command("run")
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The cluster this agent manages (default: in-cluster credentials).",
)
@click.option("--context", help="The kubeconfig context.")
@click.option(
    "--heartbeat",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between heartbeats (the hub marks the cluster Offline after 3 missed).",
)
@click.option(
    "--drift-interval",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between drift checks of what is applied.",
)
@click.option(
    "--backoff-max",
    type=float,
    default=300.0,
    show_default=True,
    help="Cap of the reconnect backoff, in seconds.",
)
@click.option(
    "--backoff-base",
    type=float,
    default=1.0,
    show_default=True,
    help="First reconnect delay, in seconds (doubles, jittered).",
)
@click.option("--watch-timeout", type=int, default=300, show_default=True, hidden=True)
def agent_run(
    kubeconfig: Path | None,
    context: str | None,
    heartbeat: float,
    drift_interval: float,
    backoff_max: float,
    backoff_base: float,
    watch_timeout: int,
) -> None:
    """Run the agent: register (once), then pull, validate, apply and report until stopped."""
    import asyncio
    import contextlib
    import signal

    from appflow.agent.local import KubeLocal
    from appflow.agent.runner import Agent, AgentOptions
    from appflow.model.agent import BackoffPolicy

    if heartbeat <= 0 or drift_interval <= 0 or backoff_max <= 0 or backoff_base <= 0:
        raise ConfigError("--heartbeat, --drift-interval and the backoff must be positive")
    log_progress()
    options = AgentOptions(
        heartbeat_seconds=heartbeat,
        drift_seconds=drift_interval,
        backoff=BackoffPolicy(base=backoff_base, cap=backoff_max),
        watch_seconds=watch_timeout,
    )

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        kube = _local_kube(kubeconfig, context)
        try:
            await Agent(KubeLocal(kube), options).run(stop)
        finally:
            kube.close()

    run(go())


@agent.command("install")
@click.option("--token", required=True, help="The registration token the hub printed.")
@click.option("--hub-url", required=True, help="The hub's agent API, https://HOST[:PORT].")
@click.option(
    "--hub-ca-pin", required=True, help="sha256:... of the hub's CA key, as the hub printed it."
)
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The cluster to install on (default: in-cluster credentials).",
)
@click.option("--context", help="The kubeconfig context.")
@click.option("--image", help="appflow's image, REPOSITORY:TAG (default: the chart's).")
@click.option(
    "--heartbeat", type=int, default=60, show_default=True, help="Seconds between heartbeats."
)
@click.option(
    "--deploy/--no-deploy",
    default=True,
    help="Apply the agent's Deployment (--no-deploy: only its Secret, for an agent run outside the cluster).",
)
def agent_install(
    token: str,
    hub_url: str,
    hub_ca_pin: str,
    kubeconfig: Path | None,
    context: str | None,
    image: str | None,
    heartbeat: int,
    deploy: bool,
) -> None:
    """Check the token with the hub, then install the agent on this cluster."""
    from appflow.agent.install import InstallOptions, install

    options = InstallOptions(
        token=token,
        hub_url=hub_url,
        ca_pin=hub_ca_pin,
        image=image,
        heartbeat_seconds=heartbeat,
        deploy=deploy,
    )
    kube = _local_kube(kubeconfig, context)
    try:
        name = run(install(kube, options, progress=lambda m: console.print(m)))
    finally:
        kube.close()
    console.print(f"agent installed; it registers as cluster {name} when it starts")
