"""Where appflow keeps its files: data (store, credentials), cache, state, tools.

Each folder follows the XDG base-directory convention and can be moved with one
environment variable, so tests and CI can isolate themselves.

The data and cache folders are private (0700): the cache holds checkouts of
private repositories and rendered Secrets.
"""

from __future__ import annotations

import os
import stat
from functools import cache
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def data_dir() -> Path:
    """Store, cluster credentials, tokens: APPFLOW_HOME or ~/.local/share/appflow."""
    override = os.environ.get("APPFLOW_HOME")
    return Path(override) if override else _xdg("XDG_DATA_HOME", ".local/share") / "appflow"


def cache_dir() -> Path:
    """Git mirrors, checkouts, render cache: APPFLOW_CACHE_DIR or ~/.cache/appflow (mode 0700)."""
    override = os.environ.get("APPFLOW_CACHE_DIR")
    folder = Path(override) if override else _xdg("XDG_CACHE_HOME", ".cache") / "appflow"
    return _private(folder)


@cache
def _private(folder: Path) -> Path:
    """FOLDER, created with mode 0700, or closed to others when an older appflow left it open."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o077:
            folder.chmod(mode & 0o700)
    except OSError:
        pass  # not ours, or not creatable: whoever writes into it reports why
    return folder


def tools_dir() -> Path:
    """Built tool binaries: APPFLOW_TOOLS_DIR or ~/.cache/appflow/tools (see tools/build-tools.sh)."""
    override = os.environ.get("APPFLOW_TOOLS_DIR")
    return Path(override) if override else _xdg("XDG_CACHE_HOME", ".cache") / "appflow" / "tools"


def sandbox_dir() -> Path:
    """Sandbox cluster state: APPFLOW_SANDBOX_DIR or ~/.local/state/appflow/sandbox."""
    override = os.environ.get("APPFLOW_SANDBOX_DIR")
    return (
        Path(override)
        if override
        else _xdg("XDG_STATE_HOME", ".local/state") / "appflow" / "sandbox"
    )


def write_private(path: Path, data: bytes) -> Path:
    """Write DATA to PATH readable by this user only (0600, in a 0700 folder), atomically:
    credentials kept in the data folder (kubeconfigs, repository keys and tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(temp, path)
    return path


def serve_socket() -> Path:
    """The local socket of a running `appflow serve` (see appflow.server.local)."""
    return data_dir() / "serve.sock"


def key_file(path: Path, *, size: int = 32) -> bytes:
    """The random key kept in PATH (mode 0600), made on first use.

    Two processes starting at once both end up with the first key written: each writes its
    own under a private name and links it into place, and the loser reads the winner's.
    """
    try:
        found = path.read_bytes()
        if len(found) == size:
            return found
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    import secrets  # here: a fresh `appflow status` reads no key, and pays for no hmac

    fresh = secrets.token_bytes(size)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(fresh)
    try:
        os.link(tmp, path)
    except FileExistsError:
        fresh = path.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return fresh
