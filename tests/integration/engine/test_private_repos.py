"""Private repositories registered with `appflow repo add`, against real git servers: an SSH
server that knows one key, and git's http-backend behind Basic auth (a user's password).

The credentials are kept in the data folder (0600), never printed, and used by every fetch;
a wrong key, a server whose host key changed and a refused password fail naming the
repository and the command that gives appflow other credentials. The token over HTTPS, the
poll and the webhook through `appflow serve` are in tests/e2e/test_private_repos.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
import yaml

from appflow.errors import GitHostKeyError
from appflow.model.records import GitCommit
from tests.helpers import unavailable
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, configmap, live, one_line
from tests.integration.git.gitservers import (
    SSHD,
    GitHttpServer,
    Origin,
    SshServer,
    serve_http,
    start_sshd,
)

pytestmark = pytest.mark.cluster

PASSWORD = "open-sesame-7f3a"


def app_files(app: str, ns: str, colour: str) -> dict[str, str | bytes | None]:
    return {
        "apps/web/appflow.yaml": yaml.safe_dump({"name": app, "namespace": ns}),
        "apps/web/config.yaml": yaml.safe_dump(configmap("settings", ns, {"colour": colour})),
    }


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    folder = tmp_path / "srv" / "org" / "private.git"
    folder.parent.mkdir(parents=True)
    return Origin(folder)


def needs_sshd() -> None:
    if not os.path.exists(SSHD):
        unavailable(f"{SSHD} is not installed (Debian package openssh-server)")
    if not pygit2.features & pygit2.enums.Feature.SSH:
        unavailable("this pygit2 build has no SSH support")


@pytest.fixture
def ssh(tmp_path: Path) -> Iterator[SshServer]:
    needs_sshd()
    with start_sshd(tmp_path / "sshd") as server:
        yield server


def credential_files(home: Path, repo: str) -> list[Path]:
    folder = home / "repos" / repo
    return sorted(folder.iterdir()) if folder.is_dir() else []


def assert_private(home: Path, repo: str) -> None:
    folder = home / "repos" / repo
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = credential_files(home, repo)
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def listed(repo: str) -> str:
    """Everything `repo list` prints about REPO, in all three formats."""
    shown = []
    for output in ("table", "json", "yaml"):
        result = cli("repo", "list", "-o", output)
        assert result.exit_code == 0, result.output
        shown.append(result.output)
    data = json.loads(shown[1])
    assert repo in {r["name"] for r in data}
    return "\n".join(shown)


def test_a_repository_over_ssh_syncs_with_its_key_kept_private(
    fleet: Fleet, space: Space, origin: Origin, ssh: SshServer
) -> None:
    ns, app, repo = space.namespace, space.app("ssh"), f"ssh-{space.suffix}"
    first = origin.commit(app_files(app, ns, "blue"))
    added = cli(
        "repo", "add", repo, ssh.url(origin.path), "--path", "apps/web",
        "--ssh-key", str(ssh.user_key), "--known-hosts", str(ssh.known_hosts),
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"app {app} (apps/web)" in added.output
    assert_private(fleet.home, repo)

    synced = cli("sync", app, "--wait", "--timeout", "120")
    assert synced.exit_code == 0, synced.output
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"colour": "blue"}
    revision = fleet.store.latest_revision(app, with_rendered=False)
    assert revision is not None
    assert revision.source_ref == GitCommit(commit=first)

    shown = listed(repo)
    key_line = ssh.user_key.read_text().splitlines()[1]
    assert key_line not in shown
    assert str(fleet.home / "repos") not in shown
    by_name = {r["name"]: r for r in json.loads(cli("repo", "list", "-o", "json").output)}
    assert by_name[repo]["auth"] == "ssh"

    # The poll asks the server with the same key.
    second = origin.commit(app_files(app, ns, "green"))
    polled = asyncio.run(fleet.engine.refresh_repo(repo))
    assert (polled.commit, polled.due) == (second, (app,))
    report = asyncio.run(fleet.engine.sync(app, commit=polled.commit, trigger="poll"))
    assert report.ok, report
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"colour": "green"}


def test_a_wrong_ssh_key_is_refused_naming_the_repository_and_leaves_nothing(
    fleet: Fleet, space: Space, origin: Origin, ssh: SshServer
) -> None:
    ns, app, repo = space.namespace, space.app("wrongkey"), f"wrongkey-{space.suffix}"
    origin.commit(app_files(app, ns, "blue"))
    url = ssh.url(origin.path)
    added = cli(
        "repo", "add", repo, url, "--path", "apps/web",
        "--ssh-key", str(ssh.other_key), "--known-hosts", str(ssh.known_hosts),
    )  # fmt: skip
    assert added.exit_code == 1
    message = one_line(added.output)
    assert f"repository {repo}:" in message
    assert "refused the ssh credentials" in message
    assert "public half is registered" in message
    assert f"appflow repo add {repo} {url} --ssh-key FILE" in message
    assert ssh.other_key.read_text().splitlines()[1] not in message
    # All or nothing: no registration, no app, no copy of the key left behind.
    assert repo not in {r.name for r in fleet.store.list_repos()}
    assert app not in {a.name for a in fleet.store.list_apps()}
    assert credential_files(fleet.home, repo) == []


def test_a_changed_host_key_stops_syncs_and_polls_until_the_new_key_is_registered(
    fleet: Fleet, space: Space, origin: Origin, tmp_path: Path
) -> None:
    needs_sshd()
    ns, app, repo = space.namespace, space.app("hostkey"), f"hostkey-{space.suffix}"
    origin.commit(app_files(app, ns, "blue"))
    with start_sshd(tmp_path / "before") as before:
        url, port, key = before.url(origin.path), before.port, before.user_key
        added = cli(
            "repo", "add", repo, url, "--path", "apps/web",
            "--ssh-key", str(key), "--known-hosts", str(before.known_hosts),
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        old_files = credential_files(fleet.home, repo)
    # The server is reinstalled on the same address, with a new host key.
    with start_sshd(tmp_path / "after", port=port, user_key=key) as after:
        moved = origin.commit(app_files(app, ns, "green"))
        synced = cli("sync", app)
        assert synced.exit_code == 1
        message = one_line(synced.output)
        assert f"app {app}, repository {repo}:" in message
        assert "host key is not in the known_hosts file" in message
        assert "confirm the new key with its administrator" in message
        assert f"appflow repo add {repo} {url} --ssh-key FILE --known-hosts FILE" in message

        with pytest.raises(GitHostKeyError) as caught:
            asyncio.run(fleet.engine.refresh_repo(repo))
        assert f"repository {repo}:" in str(caught.value)
        assert caught.value.retryable is False

        readded = cli(
            "repo", "add", repo, url, "--path", "apps/web",
            "--ssh-key", str(key), "--known-hosts", str(after.known_hosts),
        )  # fmt: skip
        assert readded.exit_code == 0, readded.output
        # The old copies went with the old registration.
        assert not set(old_files) & set(credential_files(fleet.home, repo))
        assert_private(fleet.home, repo)
        synced = cli("sync", app)
        assert synced.exit_code == 0, synced.output
    latest = fleet.store.latest_revision(app, with_rendered=False)
    assert latest is not None
    assert latest.source_ref == GitCommit(commit=moved)
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"colour": "green"}


def test_a_password_from_the_environment_signs_in_over_http_basic(
    fleet: Fleet, space: Space, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns, app, repo = space.namespace, space.app("basic"), f"basic-{space.suffix}"
    origin.commit(app_files(app, ns, "blue"))
    users = {"ci": PASSWORD}
    with serve_http(GitHttpServer(origin.path.parent.parent, users=users)) as server:
        url = server.url("org/private.git")
        monkeypatch.setenv("APPFLOW_TEST_GIT_PASSWORD", "not-the-password")
        refused = cli(
            "repo", "add", repo, url, "--path", "apps/web",
            "--username", "ci", "--password-env", "APPFLOW_TEST_GIT_PASSWORD",
        )  # fmt: skip
        assert refused.exit_code == 1
        message = one_line(refused.output)
        assert f"repository {repo}:" in message
        assert "refused the basic credentials as 'ci'" in message
        assert "--username USER --password-env VAR" in message
        assert "not-the-password" not in message
        assert credential_files(fleet.home, repo) == []

        monkeypatch.setenv("APPFLOW_TEST_GIT_PASSWORD", PASSWORD)
        added = cli(
            "repo", "add", repo, url, "--path", "apps/web",
            "--username", "ci", "--password-env", "APPFLOW_TEST_GIT_PASSWORD",
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        assert_private(fleet.home, repo)
        # Kept by appflow: the variable is not needed once the repository is registered.
        monkeypatch.delenv("APPFLOW_TEST_GIT_PASSWORD")
        server.requests.clear()
        synced = cli("sync", app)
        assert synced.exit_code == 0, synced.output
        assert "ci" in {user for _, _, user in server.requests}
        shown = listed(repo)
        assert PASSWORD not in shown
        assert "basic (ci)" in shown
    assert live(fleet.sandbox, 0, "v1", "ConfigMap", "settings", ns)["data"] == {"colour": "blue"}
