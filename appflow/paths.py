"""Where appflow keeps its files: data (store, credentials), cache, state, tools.

Each folder follows the XDG base-directory convention and can be moved with one
environment variable, so tests and CI can isolate themselves.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def data_dir() -> Path:
    """Store, cluster credentials, tokens: APPFLOW_HOME or ~/.local/share/appflow."""
    override = os.environ.get("APPFLOW_HOME")
    return Path(override) if override else _xdg("XDG_DATA_HOME", ".local/share") / "appflow"


def cache_dir() -> Path:
    """Git mirrors, checkouts, render cache: APPFLOW_CACHE_DIR or ~/.cache/appflow."""
    override = os.environ.get("APPFLOW_CACHE_DIR")
    return Path(override) if override else _xdg("XDG_CACHE_HOME", ".cache") / "appflow"


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
