"""Fixtures for the git source tests: an isolated cache, an origin repository, servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from gitservers import SSHD, GitHttpServer, Origin, SshServer, serve_http, start_sshd

from tests.helpers import unavailable


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own mirror and checkout cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    """``<tmp>/srv/org/app.git`` with a first commit on main."""
    folder = tmp_path / "srv" / "org" / "app.git"
    folder.parent.mkdir(parents=True)
    repo = Origin(folder)
    repo.commit(
        {
            "README.md": "# app\n",
            "apps/web/deployment.yaml": "kind: Deployment\n",
            "apps/web/service.yaml": "kind: Service\n",
            "apps/db/statefulset.yaml": "kind: StatefulSet\n",
        },
        message="first",
    )
    return repo


@pytest.fixture
def http_server(origin: Origin) -> Iterator[GitHttpServer]:
    """Serves ``<tmp>/srv`` over HTTP without auth: ``http_server.url('org/app.git')``."""
    with serve_http(GitHttpServer(origin.path.parent.parent)) as server:
        yield server


@pytest.fixture
def private_http_server(origin: Origin) -> Iterator[GitHttpServer]:
    """Serves ``<tmp>/srv`` over HTTP only to user ci:open-sesame and to a token."""
    users = {"ci": "open-sesame", "x-access-token": "tok-123-SECRET"}
    with serve_http(GitHttpServer(origin.path.parent.parent, users=users)) as server:
        yield server


@pytest.fixture
def ssh_server(tmp_path: Path, origin: Origin) -> Iterator[SshServer]:
    """sshd on loopback serving the origin by path; skipped without openssh-server."""
    if not os.path.exists(SSHD):
        unavailable(f"{SSHD} is not installed (Debian package openssh-server)")
    if not pygit2.features & pygit2.enums.Feature.SSH:
        unavailable("this pygit2 build has no SSH support")
    with start_sshd(tmp_path / "sshd") as server:
        yield server
