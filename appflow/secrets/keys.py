"""The age identities appflow holds for clusters and cluster groups (push mode).

Kept as the cluster credentials are: under the data folder
(``age-keys/<cluster|group>/<owner>/<name>.agekey``), folders 0700, files
0600, written atomically, never printed. A listing shows names and public
recipients only. A cluster can use its own keys and the keys of every group
whose selector matches it (the engine decides membership).

In pull mode the agent makes its identity on the edge cluster and only the
recipient reaches the hub; this ring is the engine's side of push mode.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from appflow.errors import ConfigError, NotFoundError, Where
from appflow.paths import data_dir
from appflow.secrets.age import Identity, format_identity_file, parse_identities

Scope = Literal["cluster", "group"]
SUFFIX = ".agekey"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class HeldKey:
    """One identity held for a cluster or a group, as it may be shown: no secret."""

    name: str
    scope: Scope
    owner: str
    recipient: str

    def describe(self) -> str:
        return f"{self.scope} {self.owner}: key {self.name} ({self.recipient})"


def keys_dir() -> Path:
    return data_dir() / "age-keys"


class KeyRing:
    """The identities under ROOT (default: the data folder's)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else keys_dir()

    def _folder(self, scope: Scope, owner: str) -> Path:
        return self.root / scope / owner

    def add(self, name: str, *, scope: Scope, owner: str, identity: Identity) -> HeldKey:
        """Hold IDENTITY as key NAME of OWNER; a name already taken is refused."""
        if not _NAME.match(name):
            raise ConfigError(
                f"key name {name!r} must be a DNS label (lowercase letters, digits, '-')"
            )
        folder = self._folder(scope, owner)
        path = folder / f"{name}{SUFFIX}"
        if path.exists():
            raise ConfigError(
                f"{scope} {owner} already holds a key named {name}",
                hint=f"remove it first: appflow secret key remove {name} --{scope} {owner}",
            )
        for held in self.held(scope=scope, owner=owner):
            if held.recipient == identity.recipient:
                raise ConfigError(f"{scope} {owner} already holds this identity as key {held.name}")
        for part in (self.root, self.root / scope, folder):
            part.mkdir(parents=True, exist_ok=True)
            os.chmod(part, 0o700)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(
                format_identity_file(identity, comment=f"appflow key {name} of {scope} {owner}")
            )
        os.replace(tmp, path)
        return HeldKey(name=name, scope=scope, owner=owner, recipient=identity.recipient)

    def remove(self, name: str, *, scope: Scope, owner: str) -> HeldKey:
        path = self._folder(scope, owner) / f"{name}{SUFFIX}"
        held = self._held(path, scope=scope, owner=owner)
        if held is None:
            raise NotFoundError(
                f"{scope} {owner} holds no key named {name}", hint="see `appflow secret key list`"
            )
        path.unlink()
        return held

    def remove_owner(self, *, scope: Scope, owner: str) -> list[HeldKey]:
        """Forget every key of OWNER (its cluster or group was removed)."""
        removed = [
            self.remove(k.name, scope=scope, owner=owner)
            for k in self.held(scope=scope, owner=owner)
        ]
        folder = self._folder(scope, owner)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return removed

    def held(self, *, scope: Scope | None = None, owner: str | None = None) -> list[HeldKey]:
        """Held keys, by scope, owner and name."""
        found: list[HeldKey] = []
        for kind in ("cluster", "group") if scope is None else (scope,):
            base = self.root / kind
            if not base.is_dir():
                continue
            owners = (
                [owner]
                if owner is not None
                else sorted(p.name for p in base.iterdir() if p.is_dir())
            )
            for who in owners:
                folder = base / who
                if not folder.is_dir():
                    continue
                for path in sorted(folder.glob(f"*{SUFFIX}")):
                    held = self._held(path, scope=kind, owner=who)
                    if held is not None:
                        found.append(held)
        return found

    def identities(self, *, scope: Scope, owner: str) -> list[Identity]:
        """The identities OWNER holds (secrets: only for sops's environment)."""
        found: list[Identity] = []
        folder = self._folder(scope, owner)
        if not folder.is_dir():
            return found
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            found += _read(path)
        return found

    def _held(self, path: Path, *, scope: Scope, owner: str) -> HeldKey | None:
        if not path.is_file():
            return None
        identities = _read(path)
        if not identities:
            return None
        return HeldKey(
            name=path.name.removesuffix(SUFFIX),
            scope=scope,
            owner=owner,
            recipient=identities[0].recipient,
        )


def _read(path: Path) -> list[Identity]:
    try:
        return parse_identities(path.read_text())
    except OSError as err:
        raise ConfigError(
            f"cannot read a held key: {err.strerror}", where=Where(file=str(path))
        ) from err
    except ConfigError as err:
        raise ConfigError(
            f"a held key is damaged: {err.message}", where=Where(file=str(path))
        ) from None


def read_identity_file(path: Path) -> Identity:
    """The one identity in the identity file PATH (as age-keygen writes it)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cannot read the age key file: {err}", where=Where(file=str(path))
        ) from err
    try:
        found = parse_identities(text)
    except ConfigError as err:
        raise ConfigError(err.message, where=Where(file=str(path)), hint=err.hint) from None
    if len(found) != 1:
        raise ConfigError(
            f"the file holds {len(found)} age identities; a key is exactly one",
            where=Where(file=str(path)),
            hint="age-keygen -o FILE writes one",
        )
    return found[0]
