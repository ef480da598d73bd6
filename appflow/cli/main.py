"""The `appflow` command: a root group, error translation, and its subcommands."""

from __future__ import annotations

import sys

import click

from appflow import __version__
from appflow.cli.apps import app, repo, rollout, status, sync
from appflow.cli.catalog import catalog
from appflow.cli.clusters import cluster, group
from appflow.cli.output import err_console
from appflow.cli.sandbox import sandbox
from appflow.cli.serve import events, serve, watch
from appflow.cli.server_cli import set_webhook_secret, token
from appflow.errors import AppflowError


class AppflowGroup(click.Group):
    """Prints appflow's own errors as one clear line and exits non-zero, without a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AppflowError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            sys.exit(1)


@click.group(cls=AppflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="appflow")
def cli() -> None:
    """GitOps and Helm app flows for edge Kubernetes fleets."""


for command in (
    sandbox,
    cluster,
    group,
    repo,
    app,
    sync,
    status,
    rollout,
    catalog,
    serve,
    watch,
    events,
):
    cli.add_command(command)
cli.add_command(token)
repo.add_command(set_webhook_secret)


def main() -> None:
    cli()
