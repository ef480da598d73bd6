"""`appflow token` (API bearer tokens) and `appflow repo set-webhook-secret`.

Both manage credentials of the HTTP server (``appflow serve``) and both keep secrets
out of the store: a token is kept as its SHA-256 and shown once; a webhook secret is
kept as a reference (``file:/path`` or ``env:NAME``) that the server reads per delivery.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from appflow.cli.common import store_session
from appflow.cli.output import console, emit, err_console, output_option
from appflow.model.records import utc_now
from appflow.model.tokens import parse_ttl


@click.group()
def token() -> None:
    """Bearer tokens for the HTTP API (`appflow serve`)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--read-only",
    is_flag=True,
    help="May read the API and the dashboard, and change nothing (no sync, install, rollback).",
)
@click.option(
    "--ttl",
    help="How long the token is valid, e.g. 90d, 12h, 2w (default: until revoked).",
)
@output_option
def token_create(name: str, read_only: bool, ttl: str | None, output: str) -> None:
    """Create API token NAME and print it once (only its hash is kept)."""
    from appflow.engine.tokens import create_token

    with store_session() as store:
        made = create_token(
            store, name=name, read_only=read_only, ttl=parse_ttl(ttl) if ttl else None
        )
    record, secret, expires_at = made.record, made.secret, made.record.expires_at
    if output != "table":
        emit(
            {
                "name": record.name,
                "scope": record.scope,
                "token": secret,
                "expires": _time(expires_at),
            },
            output=output,
        )
        return
    # The token alone on stdout, so that TOKEN=$(appflow token create ci) works.
    click.echo(secret)
    until = f"; it expires at {_time(expires_at)}" if expires_at else ""
    err_console.print(
        f"token {name} created{until}; it is not shown again. "
        "Send it as `Authorization: Bearer TOKEN`.",
        highlight=False,
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


@token.command("list")
@output_option
def token_list(output: str) -> None:
    """Show API tokens: names, when they were made, last used and expire (never the tokens)."""
    now = utc_now()
    with store_session() as store:
        data = [
            {
                "name": t.name,
                "scope": t.scope,
                "created": _time(t.created_at),
                "lastUsed": _time(t.last_used),
                "expires": _time(t.expires_at),
                "expired": t.expired(now),
            }
            for t in store.list_tokens()
        ]
    emit(
        data,
        output=output,
        columns=("NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES"),
        rows=lambda d: [
            [
                x["name"],
                x["scope"],
                x["created"],
                x["lastUsed"] or "never",
                (x["expires"] or "never") + (" (expired)" if x["expired"] else ""),
            ]
            for x in d
        ],
    )


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke API token NAME: requests carrying it are refused from now on."""
    from appflow.engine.tokens import revoke_token

    with store_session() as store:
        revoke_token(store, name=name)
    console.print(f"token {name} revoked")


@click.command("set-webhook-secret")
@click.argument("name")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the secret (read at each delivery; keep it mode 0600).",
)
@click.option(
    "--secret-env",
    metavar="VAR",
    help="Environment variable of the appflow server holding the secret.",
)
@click.option("--clear", is_flag=True, help="Remove the secret (webhooks are then refused).")
def set_webhook_secret(
    name: str, secret_file: Path | None, secret_env: str | None, clear: bool
) -> None:
    """Set where the webhook secret of repository NAME is read from.

    Webhook deliveries for NAME must be signed with this secret (GitHub, Gitea and
    Bitbucket sign with it, GitLab sends it as its token, the generic receiver signs
    timestamp and body); only the reference is stored, never the secret.
    """
    from appflow.engine.repos import set_webhook_secret as keep_secret

    with store_session() as store:
        kept = keep_secret(
            store, repo=name, secret_file=secret_file, secret_env=secret_env, clear=clear
        )
    for warning in kept.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if kept.ref is None:
        console.print(f"repo {name}: webhook secret removed; its webhooks are now refused")
    else:
        console.print(f"repo {name}: webhook secret from {kept.ref}", highlight=False)
