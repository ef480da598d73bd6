"""No credential is printed anywhere (issue 10, item 14): a password in a repository URL,
in listings and in the errors of fetching from it."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from appflow.errors import SourceError
from appflow.model.records import RepoRecord
from appflow.render.helm import fetch_chart_archive
from appflow.store import open_store
from tests.helpers import run_cli

PASSWORD = "hunter2-s3cret"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(tmp_path / "cache"))
    with open_store() as store:
        store.put_repo(
            RepoRecord(name="retail", url=f"https://ci:{PASSWORD}@git.example.com/retail.git")
        )
        store.put_repo(RepoRecord(name="tokened", url=f"https://{PASSWORD}@github.com/a/b.git"))
    return tmp_path


@pytest.mark.parametrize("output", ["table", "json", "yaml"])
def test_repo_list_never_prints_a_password_of_a_url(home: Path, output: str) -> None:
    result = run_cli("repo", "list", "-o", output, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert "git.example.com/retail.git" in result.output
    assert "***" in result.output


def _closed_port() -> int:
    """A local port nothing listens on: a fetch there fails with a connection error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_catalog_repo_add_never_prints_a_password_of_a_url(home: Path) -> None:
    url = f"http://ci:{PASSWORD}@127.0.0.1:{_closed_port()}/charts"
    result = run_cli("catalog", "repo", "add", "vendor", url)
    assert result.exit_code == 1, result.output
    assert PASSWORD not in result.output
    assert "ci:***@127.0.0.1" in result.output


def test_a_chart_archive_error_never_prints_a_password_of_a_url(home: Path) -> None:
    url = f"http://ci:{PASSWORD}@127.0.0.1:{_closed_port()}/app-1.0.0.tgz"
    with pytest.raises(SourceError) as caught:
        asyncio.run(fetch_chart_archive(url))
    assert PASSWORD not in str(caught.value)
    assert "ci:***@127.0.0.1" in str(caught.value)
