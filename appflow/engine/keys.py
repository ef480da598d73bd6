"""Keys for SOPS secrets: holding age identities for clusters and groups, encrypting for them,
and rotating files to new recipients.

The CLI (``appflow secret``) is a thin layer over these. A file is encrypted
for exactly the recipients of the keys held for the named clusters and groups.
Rotation is a normal change in Git: add the new key, re-encrypt the files that
name the old one (``rotation_plan`` says which, ``rotate_file`` does it with a
fresh data key), commit, sync, then remove the old key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from appflow.errors import ConfigError, NotFoundError, Where
from appflow.model.sops import format_of
from appflow.model.targeting import parse_selector, selector_matches
from appflow.secrets import sops
from appflow.secrets.age import Identity
from appflow.secrets.decrypt import SopsFile, read_sops_file, scan_folder
from appflow.secrets.keys import HeldKey, KeyRing, Scope
from appflow.store import Store

SECRET_FIELDS = "^(data|stringData)$"
"""What ``appflow secret encrypt`` encrypts in Kubernetes Secret manifests (as Flux advises)."""


def check_owner(store: Store, *, scope: Scope, owner: str) -> None:
    """NotFoundError unless OWNER is a registered cluster or group."""
    if scope == "cluster":
        store.get_cluster(owner)
    elif owner not in {g.name for g in store.list_groups()}:
        raise NotFoundError(f"no cluster group named {owner!r}", hint="see `appflow group list`")


def add_key(
    store: Store,
    *,
    name: str,
    scope: Scope,
    owner: str,
    identity: Identity,
    ring: KeyRing | None = None,
) -> HeldKey:
    check_owner(store, scope=scope, owner=owner)
    return (ring or KeyRing()).add(name, scope=scope, owner=owner, identity=identity)


def recipients_for(
    *, clusters: Sequence[str] = (), groups: Sequence[str] = (), ring: KeyRing | None = None
) -> list[str]:
    """The recipients of the keys held for CLUSTERS (their own) and GROUPS, each once."""
    keys = ring or KeyRing()
    found: list[str] = []
    wanted: list[tuple[Scope, str]] = [("cluster", c) for c in clusters]
    wanted += [("group", g) for g in groups]
    for scope, owner in wanted:
        held = keys.held(scope=scope, owner=owner)
        if not held:
            raise ConfigError(
                f"{scope} {owner} holds no age key to encrypt for",
                hint=f"appflow secret key add NAME --{scope} {owner} --age-key-file FILE (or --generate)",
            )
        found += [k.recipient for k in held]
    return list(dict.fromkeys(found))


def decrypting_keys(store: Store, cluster: str, *, ring: KeyRing | None = None) -> list[HeldKey]:
    """Every key CLUSTER can decrypt with: its own, then its groups'."""
    keys = ring or KeyRing()
    record = store.get_cluster(cluster)
    found = keys.held(scope="cluster", owner=cluster)
    for group in store.list_groups():
        if selector_matches(parse_selector(group.selector), record.labels):
            found += keys.held(scope="group", owner=group.name)
    return found


def default_encrypted_regex(path: Path, content: bytes) -> str | None:
    """``^(data|stringData)$`` for a YAML file of Kubernetes Secrets (their names and labels stay
    readable to kustomize and to reviewers), else None: the whole file."""
    if format_of(path.name) != "yaml":
        return None
    try:
        docs = [d for d in yaml.safe_load_all(content.decode()) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    if docs and all(isinstance(d, dict) and d.get("kind") == "Secret" for d in docs):
        return SECRET_FIELDS
    return None


async def encrypt_file(
    path: Path, *, recipients: Sequence[str], encrypted_regex: str | None, whole_file: bool
) -> bytes:
    """FILE's content encrypted for RECIPIENTS."""
    try:
        content = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", where=Where(file=str(path))) from err
    regex = None if whole_file else encrypted_regex or default_encrypted_regex(path, content)
    return await sops.encrypt(
        content,
        file=str(path),
        fmt=format_of(path.name),
        recipients=recipients,
        encrypted_regex=regex,
    )


@dataclass(frozen=True, kw_only=True)
class FileRotation:
    """One encrypted file, whom it is for, and what rotation changes."""

    file: SopsFile
    location: Path
    add: tuple[str, ...]
    remove: tuple[str, ...]

    @property
    def needed(self) -> bool:
        return bool(self.add or self.remove)


def rotation_plan(
    store: Store,
    *,
    cluster: str,
    paths: Sequence[Path],
    retire: str | None = None,
    ring: KeyRing | None = None,
) -> list[FileRotation]:
    """The SOPS files under PATHS that concern CLUSTER, and how each is re-encrypted.

    A file concerns the cluster when one of its own keys (held now, or the
    retired one) is among its recipients. It gains the cluster's current keys
    it lacks and loses the key RETIRE names.
    """
    keys = ring or KeyRing()
    store.get_cluster(cluster)
    held = keys.held(scope="cluster", owner=cluster)
    old: HeldKey | None = None
    if retire is not None:
        old = next((k for k in held if k.name == retire), None)
        if old is None:
            raise NotFoundError(
                f"cluster {cluster} holds no key named {retire}",
                hint="see `appflow secret key list`",
            )
    current = [k.recipient for k in held if k is not old]
    if not current:
        raise ConfigError(
            f"cluster {cluster} would be left without a key",
            hint=f"add the new key first: appflow secret key add NAME --cluster {cluster} --age-key-file FILE",
        )
    mine = {k.recipient for k in held}
    plans: list[FileRotation] = []
    for base in paths:
        for found, location in _sops_files(base):
            if not mine & set(found.recipients):
                continue
            plans.append(
                FileRotation(
                    file=found,
                    location=location,
                    add=tuple(r for r in current if r not in found.recipients),
                    remove=(old.recipient,) if old and old.recipient in found.recipients else (),
                )
            )
    return plans


def _sops_files(base: Path) -> list[tuple[SopsFile, Path]]:
    if base.is_file():
        found = read_sops_file(base, str(base))
        return [(found, base)] if found else []
    if not base.is_dir():
        raise ConfigError("no such file or folder", where=Where(file=str(base)))
    return [(f, base / f.path) for f in scan_folder(base).encrypted]


async def rotate_file(
    rotation: FileRotation, *, cluster: str, identities: Sequence[Identity]
) -> bytes:
    """ROTATION's file re-encrypted under a new data key for its new recipients."""
    return await sops.rotate(
        rotation.file.content,
        file=str(rotation.location),
        fmt=rotation.file.format,
        identities=identities,
        recipients=rotation.file.recipients,
        add=rotation.add,
        remove=rotation.remove,
        holder=f"cluster {cluster}",
    )
