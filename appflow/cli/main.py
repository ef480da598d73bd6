"""The `appflow` command: a root group, error translation, and its subcommands.

Subcommands are imported when they are invoked, not when `appflow` starts: the
engine, the Kubernetes client, git, helm and the sandbox's cryptography cost a
fresh process most of a second, and `appflow --help` or `appflow status` need
none of them. `--help` lists the commands from the table below, so it imports
no command module either (a unit test keeps the table's help in step with the
commands' own).
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from appflow import __version__
from appflow.cli.printing import DEBUG_ENV, INTERNAL_ERROR_EXIT
from appflow.errors import AppflowError

LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    # name: (module, attribute, the command's short help)
    "agent": (
        "appflow.cli.agent",
        "agent",
        "The pull agent: runs on an edge cluster and pulls its desired state from a hub.",
    ),
    "app": ("appflow.cli.apps", "app", "AppFlows: add, inspect, diff, sync, roll back, delete."),
    "catalog": (
        "appflow.cli.catalog",
        "catalog",
        "The marketplace catalog of Helm charts: browse, install, upgrade, serve.",
    ),
    "controller": (
        "appflow.cli.hub",
        "controller",
        "Run one replica of the hub controller; run several, they share the AppFlows by Leases.",
    ),
    "cluster": (
        "appflow.cli.clusters",
        "cluster",
        "Register, inspect and remove clusters (sync targets).",
    ),
    "events": (
        "appflow.cli.serve",
        "events",
        "What happened: syncs, failures, drift, self-heal, rollout steps.",
    ),
    "group": (
        "appflow.cli.clusters",
        "group",
        "Cluster groups: named label selectors over clusters.",
    ),
    "hub": (
        "appflow.cli.hub",
        "hub",
        "Hub mode: appflow's state as custom resources in a management cluster.",
    ),
    "policy": (
        "appflow.cli.policy",
        "policy",
        "Guard rails per cluster, group or repository: where apps may write, helm lookup.",
    ),
    "repo": ("appflow.cli.apps", "repo", "Git repositories (or local folders) that hold apps."),
    "rollout": (
        "appflow.cli.apps",
        "rollout",
        "Progressive rollouts across clusters: status, pause, resume.",
    ),
    "sandbox": (
        "appflow.cli.sandbox",
        "sandbox",
        "A fleet of real Kubernetes clusters on this machine (etcd, kube-apiserver,"
        " controller manager, scheduler, and kwok simulating nodes and pods).",
    ),
    "secret": (
        "appflow.cli.secrets",
        "secret",
        "SOPS secrets: age keys held for clusters and groups, encrypt, rotate.",
    ),
    "serve": (
        "appflow.cli.serve",
        "serve",
        "Run appflow as a service: poll and webhooks, drift and self-heal, HTTP API and metrics.",
    ),
    "status": ("appflow.cli.apps", "status", "The apps x clusters grid: each Deployment's state."),
    "sync": (
        "appflow.cli.apps",
        "sync",
        "Render, validate on every target, then apply app NAME(s).",
    ),
    "token": (
        "appflow.cli.server_cli",
        "token",
        "Bearer tokens for the HTTP API (`appflow serve`).",
    ),
    "watch": (
        "appflow.cli.serve",
        "watch",
        "Development mode: sync the apps under PATH each time a file in them is saved.",
    ),
}


def load_command(name: str) -> click.Command:
    """Import subcommand NAME of `appflow` (with the subcommands other modules add to it)."""
    module, attribute = LAZY_COMMANDS[name][:2]
    command: object = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{module}.{attribute} is not a click command")
    if name == "repo" and isinstance(command, click.Group):
        # The webhook secret is a server credential: its command lives with the tokens.
        from appflow.cli.server_cli import set_webhook_secret

        command.add_command(set_webhook_secret)
    if name == "cluster" and isinstance(command, click.Group):
        # What a cluster can decrypt with is a secrets matter: its command lives with them.
        from appflow.cli.agent import rotate_credentials, token
        from appflow.cli.secrets import cluster_recipients

        command.add_command(cluster_recipients)
        # Pull-mode clusters on a hub: registration tokens and agent credentials.
        command.add_command(token)
        command.add_command(rotate_credentials)
    return command


class AppflowGroup(click.Group):
    """Prints appflow's own errors as one clear line and exits non-zero, without a traceback.

    Its subcommands are imported on first use (see the module's docstring).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            command = load_command(cmd_name)
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # As click's own, but from the table: listing the commands imports none of them.
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in LAZY_COMMANDS and name not in self.commands:
                # A stand-in command shortens the text exactly as the real one would.
                stand_in = click.Command(name, help=LAZY_COMMANDS[name][2])
                text = stand_in.get_short_help_str(limit)
            else:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                text = command.get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AppflowError as err:
            from appflow.cli.printing import say_error

            say_error(str(err))
            sys.exit(1)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:
            # A bug: still one line, not a traceback. --debug (or APPFLOW_DEBUG=1) shows it.
            if ctx.params.get("debug") or os.environ.get(DEBUG_ENV):
                raise
            from appflow.cli.printing import say_bug

            say_bug(err)
            sys.exit(INTERNAL_ERROR_EXIT)


@click.group(cls=AppflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="appflow")
@click.option(
    "--debug",
    is_flag=True,
    help="Log everything to stderr (secret values are scrubbed from every line).",
)
@click.option(
    "--hub",
    metavar="KUBECONFIG[:CONTEXT]",
    help="Work on the hub of this kubeconfig instead of the standalone store"
    " (also APPFLOW_HUB, or `appflow hub use`).",
)
def cli(debug: bool, hub: str | None) -> None:
    """GitOps and Helm app flows for edge Kubernetes fleets."""
    from appflow.cli import common
    from appflow.cli.logs import configure_logging

    configure_logging(debug=debug)
    common.hub_flag = hub


def main() -> None:
    cli()
