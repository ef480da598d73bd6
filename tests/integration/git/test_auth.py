"""Credentials over real servers: HTTP Basic (token, user and password) and SSH keys.

Every failure must name the repository and what to check, and never the secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gitservers import GitHttpServer, Origin, SshServer

from appflow.errors import ConfigError, GitAuthError
from appflow.sources.git import GitAuth, GitSource, RefSpec, fetch, resolve

MAIN = RefSpec.branch("main")


def _secret_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")  # a trailing newline, as editors and `echo` leave one
    return path


async def test_token_from_a_file(
    private_http_server: GitHttpServer, origin: Origin, tmp_path: Path
) -> None:
    auth = GitAuth.token(file=_secret_file(tmp_path, "token", "tok-123-SECRET"))
    result = await fetch(GitSource(private_http_server.url("org/app.git"), MAIN, auth))
    assert result.fetched
    assert result.commit == origin.head()
    assert (
        "POST",
        "/org/app.git/git-upload-pack",
        "x-access-token",
    ) in private_http_server.requests


async def test_basic_from_the_environment(
    private_http_server: GitHttpServer, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_TEST_GIT_PASSWORD", "open-sesame")
    auth = GitAuth.basic(username="ci", password_env="APPFLOW_TEST_GIT_PASSWORD")
    result = await fetch(GitSource(private_http_server.url("org/app.git"), MAIN, auth))
    assert result.commit == origin.head()
    assert {user for _, _, user in private_http_server.requests} == {None, "ci"}


async def test_wrong_token_is_refused_without_showing_it(
    private_http_server: GitHttpServer, tmp_path: Path
) -> None:
    auth = GitAuth.token(file=_secret_file(tmp_path, "token", "tok-EXPIRED-999"))
    url = private_http_server.url("org/app.git")
    with pytest.raises(GitAuthError) as caught:
        await resolve(GitSource(url, MAIN, auth))
    message = str(caught.value)
    assert url in message
    assert "refused the token credentials" in message
    assert "not expired" in message
    assert "tok-EXPIRED-999" not in message
    assert "tok-EXPIRED-999" not in repr(auth)
    assert not caught.value.retryable


async def test_wrong_password_is_refused_without_showing_it(
    private_http_server: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_TEST_GIT_PASSWORD", "guess-1234")
    auth = GitAuth.basic(username="ci", password_env="APPFLOW_TEST_GIT_PASSWORD")
    with pytest.raises(GitAuthError) as caught:
        await fetch(GitSource(private_http_server.url("org/app.git"), MAIN, auth))
    assert (
        "refused the basic credentials as 'ci' from environment variable APPFLOW_TEST_GIT_PASSWORD"
        in str(caught.value)
    )
    assert "guess-1234" not in str(caught.value)


async def test_private_repository_without_credentials(private_http_server: GitHttpServer) -> None:
    with pytest.raises(GitAuthError, match="asks for credentials and the source has none"):
        await resolve(GitSource(private_http_server.url("org/app.git"), MAIN))


async def test_unset_environment_variable_is_named(
    private_http_server: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APPFLOW_TEST_GIT_TOKEN", raising=False)
    auth = GitAuth.token(env="APPFLOW_TEST_GIT_TOKEN")
    with pytest.raises(
        GitAuthError, match="environment variable APPFLOW_TEST_GIT_TOKEN, which is not set"
    ):
        await resolve(GitSource(private_http_server.url("org/app.git"), MAIN, auth))


async def test_secrets_are_read_at_use_time(
    private_http_server: GitHttpServer, origin: Origin, tmp_path: Path
) -> None:
    token = _secret_file(tmp_path, "token", "tok-OLD")
    source = GitSource(private_http_server.url("org/app.git"), MAIN, GitAuth.token(file=token))
    with pytest.raises(GitAuthError):
        await resolve(source)
    token.write_text("tok-123-SECRET\n")  # the token was rotated on disk
    assert (await resolve(source)).commit == origin.head()


def test_auth_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="exactly one of token_file and token_env"):
        GitAuth.token()
    with pytest.raises(ConfigError, match="exactly one of password_file and password_env"):
        GitAuth.basic(username="ci", password_file="/a", password_env="B")
    with pytest.raises(ConfigError, match="exactly one of private_key_file and private_key_env"):
        GitAuth.ssh()


async def test_ssh_key_with_known_hosts(ssh_server: SshServer, origin: Origin) -> None:
    auth = GitAuth.ssh(
        private_key_file=ssh_server.user_key, known_hosts_file=ssh_server.known_hosts
    )
    result = await fetch(GitSource(ssh_server.url(origin.path), MAIN, auth))
    assert result.fetched
    assert result.commit == origin.head()


async def test_ssh_key_from_the_environment(
    ssh_server: SshServer, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_TEST_SSH_KEY", ssh_server.user_key.read_text())
    auth = GitAuth.ssh(private_key_env="APPFLOW_TEST_SSH_KEY", insecure_accept_host_key=True)
    assert (
        await resolve(GitSource(ssh_server.url(origin.path), MAIN, auth))
    ).commit == origin.head()
    assert "BEGIN OPENSSH" not in repr(auth)


async def test_ssh_key_the_server_does_not_know(ssh_server: SshServer, origin: Origin) -> None:
    auth = GitAuth.ssh(
        private_key_file=ssh_server.other_key, known_hosts_file=ssh_server.known_hosts
    )
    url = ssh_server.url(origin.path)
    with pytest.raises(GitAuthError) as caught:
        await resolve(GitSource(url, MAIN, auth))
    message = str(caught.value)
    assert url in message
    assert "public half is registered" in message
    assert ssh_server.other_key.read_text().splitlines()[1] not in message


async def test_ssh_unknown_host_key_is_refused(
    ssh_server: SshServer, origin: Origin, tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    auth = GitAuth.ssh(private_key_file=ssh_server.user_key, known_hosts_file=empty)
    with pytest.raises(GitAuthError, match=r"identity could not be verified.*known_hosts"):
        await resolve(GitSource(ssh_server.url(origin.path), MAIN, auth))
    # The same source with the server's key in its known_hosts file gets through.
    trusted = GitAuth.ssh(
        private_key_file=ssh_server.user_key, known_hosts_file=ssh_server.known_hosts
    )
    assert (
        await resolve(GitSource(ssh_server.url(origin.path), MAIN, trusted))
    ).commit == origin.head()
