"""`appflow secret`: the age keys appflow holds for clusters and groups, encrypting files for
them, and rotating. `appflow cluster recipients` lists what a cluster can decrypt with."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import click

from appflow.cli.common import run, store_session
from appflow.cli.output import console, emit, err_console, output_option
from appflow.errors import ConfigError, Where

if TYPE_CHECKING:
    from appflow.secrets.keys import Scope


def _scope(cluster: str | None, group: str | None) -> tuple[Scope, str]:
    if cluster and not group:
        return "cluster", cluster
    if group and not cluster:
        return "group", group
    raise ConfigError("give exactly one of --cluster or --group")


def _write_atomically(path: Path, content: bytes) -> None:
    """Replace PATH by CONTENT, keeping its mode (a half-written file would lose the secret)."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.appflow-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(tmp, path)


@click.group()
def secret() -> None:
    """SOPS secrets: age keys held for clusters and groups, encrypt, rotate."""


@secret.group("key")
def key() -> None:
    """The age identities appflow holds to decrypt for clusters and groups (push mode)."""


_owner_options = [
    click.option("--cluster", help="A registered cluster."),
    click.option("--group", help="A cluster group: every member can decrypt with its keys."),
]


def _with_owner(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_owner_options):
        f = option(f)
    return f


@key.command("add")
@click.argument("name")
@_with_owner
@click.option(
    "--age-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An age identity file (age-keygen -o FILE): its one AGE-SECRET-KEY line is copied.",
)
@click.option("--generate", is_flag=True, help="Make a new identity here instead of reading one.")
def key_add(
    name: str, cluster: str | None, group: str | None, age_key_file: Path | None, generate: bool
) -> None:
    """Hold an age identity as key NAME of a cluster or a group. Its recipient is printed; the
    identity is stored 0600 in the data folder and never printed."""
    from appflow.engine.keys import add_key
    from appflow.secrets import age
    from appflow.secrets.keys import read_identity_file

    scope, owner = _scope(cluster, group)
    if bool(age_key_file) == generate:
        raise ConfigError("give exactly one of --age-key-file or --generate")
    if age_key_file is not None:
        identity = read_identity_file(age_key_file)
        if stat.S_IMODE(age_key_file.stat().st_mode) & (stat.S_IRWXG | stat.S_IRWXO):
            err_console.print(
                f"[yellow]warning:[/] {age_key_file} can be read by other users; chmod 600 it",
                highlight=False,
            )
    else:
        identity = age.generate()
    with store_session() as store:
        held = add_key(store, name=name, scope=scope, owner=owner, identity=identity)
    console.print(f"{held.scope} {held.owner}: key {held.name} added", highlight=False)
    console.print(f"recipient: {held.recipient}", highlight=False)


@key.command("list")
@_with_owner
@output_option
def key_list(cluster: str | None, group: str | None, output: str) -> None:
    """The keys held: name, cluster or group, public recipient (never the identity)."""
    from appflow.secrets.keys import KeyRing

    ring = KeyRing()
    if cluster:
        found = ring.held(scope="cluster", owner=cluster)
    elif group:
        found = ring.held(scope="group", owner=group)
    else:
        found = ring.held()
    data = [
        {"name": k.name, "scope": k.scope, "owner": k.owner, "recipient": k.recipient}
        for k in found
    ]
    emit(
        data,
        output=output,
        columns=("NAME", "SCOPE", "OWNER", "RECIPIENT"),
        rows=lambda d: [[x["name"], x["scope"], x["owner"], x["recipient"]] for x in d],
    )


@key.command("remove")
@click.argument("name")
@_with_owner
def key_remove(name: str, cluster: str | None, group: str | None) -> None:
    """Stop holding key NAME. Files encrypted only for it can no longer be decrypted for that
    cluster or group: rotate them first (`appflow secret rotate`)."""
    from appflow.secrets.keys import KeyRing

    scope, owner = _scope(cluster, group)
    held = KeyRing().remove(name, scope=scope, owner=owner)
    console.print(
        f"{held.scope} {held.owner}: key {held.name} ({held.recipient}) removed", highlight=False
    )


@secret.command("encrypt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--cluster", "clusters", multiple=True, help="Encrypt for this cluster's keys (repeatable)."
)
@click.option(
    "--group", "groups", multiple=True, help="Encrypt for this group's keys (repeatable)."
)
@click.option(
    "--encrypted-regex",
    help="Encrypt only the values of keys matching this regex. Default for Kubernetes Secret "
    "manifests: ^(data|stringData)$; for anything else the whole file.",
)
@click.option("--whole-file", is_flag=True, help="Encrypt every value, also of a Secret manifest.")
@click.option("-i", "--in-place", is_flag=True, help="Replace FILE instead of printing the result.")
def encrypt(
    file: Path,
    clusters: tuple[str, ...],
    groups: tuple[str, ...],
    encrypted_regex: str | None,
    whole_file: bool,
    in_place: bool,
) -> None:
    """Encrypt FILE with sops for exactly the recipients of the named clusters' and groups' keys."""
    from appflow.engine.keys import check_owner, encrypt_file, recipients_for

    if not clusters and not groups:
        raise ConfigError("name at least one --cluster or --group to encrypt for")
    if encrypted_regex and whole_file:
        raise ConfigError("give --encrypted-regex or --whole-file, not both")
    with store_session() as store:
        for c in clusters:
            check_owner(store, scope="cluster", owner=c)
        for g in groups:
            check_owner(store, scope="group", owner=g)
    recipients = recipients_for(clusters=clusters, groups=groups)
    out = run(
        encrypt_file(
            file, recipients=recipients, encrypted_regex=encrypted_regex, whole_file=whole_file
        )
    )
    if in_place:
        _write_atomically(file, out)
        err_console.print(
            f"{file}: encrypted for {', '.join(recipients)}", highlight=False, soft_wrap=True
        )
    else:
        click.echo(out.decode(), nl=False)


@secret.command("rotate")
@click.option("--cluster", required=True, help="The cluster whose files to re-encrypt.")
@click.option("--retire", help="A key of the cluster to take out of every file (its old key).")
@click.option("--write", is_flag=True, help="Re-encrypt the files in place (default: only list).")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@output_option
def rotate(
    cluster: str, retire: str | None, write: bool, paths: tuple[Path, ...], output: str
) -> None:
    """Re-encrypt the SOPS files under PATHS (default: .) for CLUSTER's current keys.

    \b
    Rotating a cluster's key is a normal commit and sync:
      1. appflow secret key add NEW --cluster C --age-key-file new.txt
      2. appflow secret rotate --cluster C --retire OLD ./my-repo           (lists the files)
      3. appflow secret rotate --cluster C --retire OLD ./my-repo --write   (new data keys)
      4. commit, push, sync (the values did not change: nothing is re-applied)
      5. appflow secret key remove OLD --cluster C
    """
    from appflow.engine.keys import decrypting_keys, rotate_file, rotation_plan
    from appflow.secrets.keys import KeyRing

    with store_session() as store:
        plans = rotation_plan(store, cluster=cluster, paths=paths or (Path("."),), retire=retire)
        decrypting_keys(store, cluster)  # the cluster exists and its groups parse
    data = [
        {
            "file": str(p.location),
            "recipients": list(p.file.recipients),
            "add": list(p.add),
            "remove": list(p.remove),
            "rotated": False,
        }
        for p in plans
    ]
    if write:
        identities = KeyRing().identities(scope="cluster", owner=cluster)
        for plan, row in zip(plans, data, strict=True):
            if not plan.needed:
                continue
            _write_atomically(
                plan.location, run(rotate_file(plan, cluster=cluster, identities=identities))
            )
            row["rotated"] = True
    emit(
        data,
        output=output,
        columns=("FILE", "ADD", "REMOVE", "STATE"),
        rows=lambda d: [
            [
                x["file"],
                ", ".join(x["add"]) or "-",
                ", ".join(x["remove"]) or "-",
                "rotated"
                if x["rotated"]
                else "to rotate"
                if x["add"] or x["remove"]
                else "up to date",
            ]
            for x in d
        ],
    )
    if output != "table":
        return
    pending = [x for x in data if (x["add"] or x["remove"]) and not x["rotated"]]
    if not data:
        console.print(
            f"no SOPS file under {', '.join(map(str, paths or ('.',)))} is encrypted for cluster {cluster}"
        )
    elif pending:
        console.print("run again with --write to re-encrypt them (each gets a new data key)")
    elif write:
        console.print("next: commit and push, sync, then remove the retired key", highlight=False)


@click.command("recipients")
@click.argument("name")
@output_option
def cluster_recipients(name: str, output: str) -> None:
    """The age recipients cluster NAME can decrypt for: its own keys and its groups'."""
    from appflow.engine.keys import decrypting_keys

    with store_session() as store:
        found = decrypting_keys(store, name)
    if not found:
        raise ConfigError(
            "holds no age key",
            where=Where(cluster=name),
            hint=f"appflow secret key add NAME --cluster {name} --age-key-file FILE (or --generate)",
        )
    data = [{"recipient": k.recipient, "key": k.name, "via": f"{k.scope} {k.owner}"} for k in found]
    emit(
        data,
        output=output,
        columns=("RECIPIENT", "KEY", "VIA"),
        rows=lambda d: [[x["recipient"], x["key"], x["via"]] for x in d],
    )
