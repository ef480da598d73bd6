"""`appflow repo add`'s credential options: which combinations mean what, and what is refused
before anything is fetched or written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appflow.engine.repos import GivenCredentials, given_credentials, register_repo
from appflow.errors import ConfigError
from appflow.model.records import RepoCredentials
from appflow.store import open_store

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_bytes(KEY)
    return path


def test_no_option_is_a_public_repository() -> None:
    assert given_credentials() is None


def test_an_ssh_key_with_its_known_hosts(key: Path, tmp_path: Path) -> None:
    hosts = tmp_path / "known_hosts"
    hosts.write_text("[git.example.com]:22 ssh-ed25519 AAAA\n")
    given = given_credentials(ssh_key=key, known_hosts=hosts, username="deploy")
    assert given == GivenCredentials(
        kind="ssh", secret=KEY, username="deploy", known_hosts=hosts.read_bytes()
    )
    assert "OPENSSH" not in repr(given)


def test_secrets_from_the_environment() -> None:
    environ = {"PW": "hunter2-long\n", "TOK": "glpat-123"}
    basic = given_credentials(username="ci", password_env="PW", environ=environ)
    assert basic == GivenCredentials(kind="basic", secret=b"hunter2-long", username="ci")
    token = given_credentials(token_env="TOK", environ=environ)
    assert token == GivenCredentials(kind="token", secret=b"glpat-123")
    assert "glpat" not in repr(token)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token_env": "TOK", "password_env": "PW", "username": "ci"}, "exclude each other"),
        ({"known_hosts": Path("/etc/hosts")}, "--known-hosts goes with --ssh-key"),
        ({"password_env": "PW"}, "--password-env needs --username"),
        ({"username": "ci"}, "--username goes with --password-env"),
        ({"token_env": "MISSING"}, "environment variable MISSING is not set or empty"),
        ({"token_env": "EMPTY"}, "environment variable EMPTY is not set or empty"),
        ({"ssh_key": Path("/nonexistent/key")}, "--ssh-key: cannot read /nonexistent/key"),
    ],
)
def test_refused_combinations(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        given_credentials(environ={"TOK": "t", "PW": "p", "EMPTY": " "}, **options)  # type: ignore[arg-type]


def test_a_public_key_is_not_taken_for_the_private_one(tmp_path: Path) -> None:
    public = tmp_path / "id_ed25519.pub"
    public.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI test\n")
    with pytest.raises(ConfigError, match="this is not a private key") as caught:
        given_credentials(ssh_key=public)
    assert caught.value.where.file == str(public)


@pytest.mark.parametrize(
    ("url", "given", "message"),
    [
        ("https://git.example.com/o/r.git", "ssh", "--ssh-key needs an SSH URL"),
        ("ssh://git@git.example.com/o/r.git", "token", "is not an https:// URL"),
        ("git@git.example.com:o/r.git", "basic", "is not an https:// URL"),
        ("{folder}", "token", "is a local folder: it takes no credentials"),
    ],
)
def test_credentials_must_fit_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, given: str, message: str
) -> None:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path / "home"))
    credentials = {
        "ssh": GivenCredentials(kind="ssh", secret=KEY),
        "token": GivenCredentials(kind="token", secret=b"t"),
        "basic": GivenCredentials(kind="basic", secret=b"p", username="ci"),
    }[given]
    store = open_store(tmp_path / "store.db")
    try:
        with pytest.raises(ConfigError, match=message):
            asyncio.run(
                register_repo(
                    store, name="r", url=url.format(folder=tmp_path), credentials=credentials
                )
            )
        assert store.list_repos() == []
    finally:
        store.close()
    assert not (tmp_path / "home" / "repos").exists()


def test_recorded_credentials_hold_only_where_the_secret_is() -> None:
    assert RepoCredentials().describe() == "none"
    assert (
        RepoCredentials(kind="basic", username="ci", secret_file="/d/p").describe() == "basic (ci)"
    )
    with pytest.raises(ConfigError, match="need a secret file"):
        RepoCredentials(kind="token")
    with pytest.raises(ConfigError, match="only SSH credentials take a known_hosts file"):
        RepoCredentials(kind="token", secret_file="/d/t", known_hosts_file="/d/k")
