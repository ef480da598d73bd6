"""A private repository, over SSH with a key and over HTTPS with a token, as a user runs it:
`appflow repo add` with the credentials, `appflow sync`, then `appflow serve` picking up a
push by its poll, and a push announced by a signed webhook. The secret never shows in
`repo list`, the HTTP API or the daemon's log."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pygit2
import pytest

from appflow.model.records import utc_now
from appflow.store import open_store
from tests.e2e.support import serving, until
from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import Space, cli, history_json, live
from tests.integration.engine.test_private_repos import (
    app_files,
    assert_private,
    listed,
    needs_sshd,
)
from tests.integration.git.gitservers import (
    GitHttpServer,
    Origin,
    TlsFiles,
    serve_http,
    start_sshd,
)

pytestmark = pytest.mark.cluster

TOKEN = "tok-e2e-5d1c9b"
HOOK_SECRET = "hook-secret-for-private-repos"


@dataclass(frozen=True)
class Served:
    """A private repository being served, and how `repo add` signs in to it."""

    url: str
    options: tuple[str, ...]
    secret: str
    """A piece of the secret that must never be shown."""
    env: dict[str, str]
    """What `appflow serve` needs in its environment to reach it."""
    webhook_urls: dict[str, str]


@pytest.fixture(params=["ssh", "https-token"])
def served(
    request: pytest.FixtureRequest,
    origin: Origin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    if request.param == "ssh":
        needs_sshd()
        with start_sshd(tmp_path / "sshd") as ssh:
            url = ssh.url(origin.path)
            yield Served(
                url=url,
                options=("--ssh-key", str(ssh.user_key), "--known-hosts", str(ssh.known_hosts)),
                secret=ssh.user_key.read_text().splitlines()[1],
                env={},
                webhook_urls={"ssh_url": url},
            )
        return
    tls = TlsFiles.create(tmp_path / "tls")
    # This process trusts the server's CA for libgit2 (its CLI runs here); `appflow
    # serve` is told through SSL_CERT_FILE, as a site with its own CA would do.
    pygit2.settings.set_ssl_cert_locations(str(tls.ca), None)
    monkeypatch.setenv("APPFLOW_TEST_GIT_TOKEN", TOKEN)
    users = {"x-access-token": TOKEN}
    with serve_http(GitHttpServer(origin.path.parent.parent, users=users, tls=tls)) as server:
        url = server.url("org/private.git")
        yield Served(
            url=url,
            options=("--token-env", "APPFLOW_TEST_GIT_TOKEN"),
            secret=TOKEN,
            env={"SSL_CERT_FILE": str(tls.ca), "APPFLOW_TEST_GIT_TOKEN": ""},
            webhook_urls={"clone_url": url},
        )


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    folder = tmp_path / "srv" / "org" / "private.git"
    folder.parent.mkdir(parents=True)
    return Origin(folder)


def _signed_push(base: str, served: Served, commit: str) -> httpx.Response:
    body = json.dumps(
        {"ref": "refs/heads/main", "after": commit, "repository": served.webhook_urls}
    ).encode()
    signature = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{base}/hooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"d-{commit[:8]}",
            "X-Hub-Signature-256": f"sha256={signature}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )


def _fetched_since(repo: str, since: datetime) -> bool:
    store = open_store()
    try:
        fetched = store.get_repo(repo).last_fetched
    finally:
        store.close()
    return fetched is not None and fetched > since


def _landed(fleet: Fleet, app: str, ns: str, colour: str, trigger: str) -> bool:
    for index in range(len(fleet.cluster_names)):
        found = live(fleet.sandbox, index, "v1", "ConfigMap", "settings", ns) or {}
        if (found.get("data") or {}).get("colour") != colour:
            return False
    store = open_store()
    try:
        if {d.state for d in store.list_deployments(app=app)} != {"Ready"}:
            return False
    finally:
        store.close()
    return any(entry["trigger"] == trigger for entry in history_json(app))


def test_a_private_repository_syncs_polls_and_takes_a_signed_webhook(
    fleet: Fleet, space: Space, origin: Origin, served: Served, tmp_path: Path
) -> None:
    ns, app, repo = space.namespace, space.app("private"), f"private-{space.suffix}"
    origin.commit(app_files(app, ns, "blue"))
    added = cli(
        "repo", "add", repo, served.url, "--branch", "main", "--path", "apps/web", *served.options
    )
    assert added.exit_code == 0, added.output
    assert_private(fleet.home, repo)
    synced = cli("sync", app, "--wait", "--timeout", "120")
    assert synced.exit_code == 0, synced.output
    secret_file = fleet.home / "hook-secret"
    secret_file.write_text(HOOK_SECRET)
    assert cli("repo", "set-webhook-secret", repo, "--secret-file", str(secret_file)).exit_code == 0

    log = tmp_path / "serve.log"
    # The poll: a push is found by the daemon's next look at the remote.
    with serving(fleet, log, args=("--poll", "1"), env=served.env):
        origin.commit(app_files(app, ns, "green"))
        until(
            lambda: _landed(fleet, app, ns, "green", "poll"),
            timeout=120,
            what="the polled push to be Ready on every cluster",
            log=log,
        )

    # The webhook: a daemon that would not poll for an hour syncs the push it announces.
    started = utc_now()
    with serving(fleet, log, args=("--poll", "3600"), env=served.env) as (_, base):
        # Its first look at the repository (at start) is over before the push.
        until(
            lambda: _fetched_since(repo, started),
            timeout=60,
            what="the daemon's first look at the repository",
            log=log,
        )
        created = cli("token", "create", f"e2e-{space.suffix}", "-o", "json")
        assert created.exit_code == 0, created.output
        token = json.loads(created.output)["token"]
        commit = origin.commit(app_files(app, ns, "red"))
        response = _signed_push(base, served, commit)
        assert response.status_code == 202, response.text
        assert repo in response.text
        until(
            lambda: _landed(fleet, app, ns, "red", "webhook"),
            timeout=120,
            what="the announced push to be Ready on every cluster",
            log=log,
        )
        api = httpx.get(
            f"{base}/api/v1/repos", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert api.status_code == 200, api.text
        assert repo in api.text

    history = history_json(app)
    assert {e["source"] for e in history if e["trigger"] == "webhook"} == {commit[:12]}
    for shown in (listed(repo), api.text, log.read_text()):
        assert served.secret not in shown
        assert str(fleet.home / "repos") not in shown
