"""No credential is printed anywhere (issue 10, item 14): a password in a repository URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from appflow.model.records import RepoRecord
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
