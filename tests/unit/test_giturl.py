"""Repository URLs reduce to one key per repository; printed URLs carry no secrets."""

from __future__ import annotations

import pytest

from appflow.errors import ConfigError
from appflow.model.giturl import is_local_url, normalize_repo_url, redact_url


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/org/repo",
        "https://git.example.com/org/repo.git",
        "https://git.example.com/org/repo/",
        "https://git.example.com/org/repo.git/",
        "https://Git.Example.com/org/repo",
        "http://git.example.com:8080/org/repo.git",
        "https://user:s3cret@git.example.com/org/repo.git",
        "ssh://git@git.example.com/org/repo.git",
        "ssh://git@git.example.com:2222/org/repo",
        "git@git.example.com:org/repo.git",
        "git@git.example.com:org/repo",
        "git.example.com:org/repo.git",
        "git://git.example.com/org/repo.git",
    ],
)
def test_every_spelling_gives_one_key(url: str) -> None:
    assert normalize_repo_url(url) == "git.example.com/org/repo"


def test_different_repositories_get_different_keys() -> None:
    keys = {
        normalize_repo_url(u)
        for u in (
            "https://git.example.com/org/repo",
            "https://git.example.com/org/repo2",
            "https://git.example.com/other/repo",
            "https://mirror.example.com/org/repo",
        )
    }
    assert len(keys) == 4


def test_path_case_is_kept() -> None:
    assert normalize_repo_url("https://host/Org/Repo.git") == "host/Org/Repo"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("file:///srv/git/repo.git", "/srv/git/repo"),
        ("file://localhost/srv/git/repo.git/", "/srv/git/repo"),
        ("/srv/git/repo.git", "/srv/git/repo"),
        ("/srv/git/repo", "/srv/git/repo"),
    ],
)
def test_local_repositories_keep_their_path(url: str, key: str) -> None:
    assert normalize_repo_url(url) == key


@pytest.mark.parametrize("url", ["", "   ", "https:///org/repo"])
def test_unusable_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        normalize_repo_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@host/org/repo.git", "https://user:***@host/org/repo.git"),
        ("https://ghp_TOKEN@host:8443/org/repo", "https://***@host:8443/org/repo"),
        ("https://host/org/repo.git", "https://host/org/repo.git"),
        ("ssh://git@host/org/repo.git", "ssh://git@host/org/repo.git"),
        ("git@host:org/repo.git", "git@host:org/repo.git"),
    ],
)
def test_redact_url_hides_secrets_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("file:///srv/repo.git", True),
        ("/srv/repo.git", True),
        ("./repo", True),
        ("https://host/org/repo", False),
        ("git@host:org/repo.git", False),
        ("ssh://host/org/repo", False),
    ],
)
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local
