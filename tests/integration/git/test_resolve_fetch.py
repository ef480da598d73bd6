"""Resolving refs and fetching them, over file://, HTTP (git http-backend) and SSH (sshd)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pygit2
import pytest
from gitservers import GitHttpServer, Origin, closed_port

from appflow.errors import GitRefNotFoundError, SourceError
from appflow.sources.git import GitAuth, GitMirror, GitSource, RefSpec, fetch, resolve


@dataclass
class Served:
    """The origin repository as one transport serves it."""

    transport: str
    url: str
    auth: GitAuth
    uploads: Callable[[], int] | None = None
    """Fetches the server has served, where the transport lets us count them."""

    def source(self, ref: RefSpec) -> GitSource:
        return GitSource(self.url, ref, self.auth)


@pytest.fixture(params=["file", "http", "ssh"])
def served(request: pytest.FixtureRequest, origin: Origin) -> Served:
    if request.param == "file":
        return Served("file", f"file://{origin.path}", GitAuth.none())
    if request.param == "http":
        server: GitHttpServer = request.getfixturevalue("http_server")
        return Served("http", server.url("org/app.git"), GitAuth.none(), server.uploads)
    ssh = request.getfixturevalue("ssh_server")
    auth = GitAuth.ssh(private_key_file=ssh.user_key, known_hosts_file=ssh.known_hosts)
    return Served("ssh", ssh.url(origin.path), auth)


async def test_resolves_branch_tag_commit_and_head(served: Served, origin: Origin) -> None:
    first = origin.head()
    origin.tag("v1.0.0", first, annotated=True)
    second = origin.commit(
        {"apps/web/deployment.yaml": "kind: Deployment\nreplicas: 2\n"}, branch="main"
    )
    origin.commit({"dev.txt": "wip"}, branch="dev")

    main = await resolve(served.source(RefSpec.branch("main")))
    assert (main.commit, main.ref_name, main.version) == (second, "refs/heads/main", None)

    # An annotated tag resolves to the commit it tags, not to the tag object.
    tag = await resolve(served.source(RefSpec.tag("v1.0.0")))
    assert (tag.commit, tag.ref_name, tag.version) == (first, "refs/tags/v1.0.0", "1.0.0")

    head = await resolve(served.source(RefSpec.head()))
    assert (head.commit, head.ref_name) == (second, "refs/heads/main")

    dev = await fetch(served.source(RefSpec.branch("dev")))
    assert dev.commit == origin.head("dev")
    pinned = await fetch(served.source(RefSpec.commit(first)))
    assert pinned.commit == first


async def test_semver_range_picks_the_highest_matching_tag(served: Served, origin: Origin) -> None:
    commits = {}
    for version in ["v1.0.0", "v1.2.0", "v1.4.1", "v1.10.0", "v2.0.0", "v1.11.0-rc.1"]:
        commits[version] = origin.commit({"VERSION": version}, message=version)
        origin.tag(version, commits[version], annotated=version.endswith(".0"))

    result = await fetch(served.source(RefSpec.semver(">=1.2 <2")))
    assert (result.commit, result.ref.ref_name, result.ref.version) == (
        commits["v1.10.0"],
        "refs/tags/v1.10.0",
        "1.10.0",
    )
    tilde = await resolve(served.source(RefSpec.semver("~1.4")))
    assert tilde.commit == commits["v1.4.1"]
    prerelease = await resolve(served.source(RefSpec.semver(">=1.11.0-rc.0 <2")))
    assert prerelease.commit == commits["v1.11.0-rc.1"]


async def test_no_fetch_while_the_remote_has_not_moved(served: Served, origin: Origin) -> None:
    source = served.source(RefSpec.branch("main"))
    first = await fetch(source)
    assert first.fetched
    assert first.commit == origin.head()
    uploads = served.uploads() if served.uploads else None

    again = await fetch(source)
    assert not again.fetched
    assert again.commit == first.commit
    if served.uploads:
        assert served.uploads() == uploads, "a second fetch of an unmoved ref sent objects"

    pushed = origin.commit({"apps/web/deployment.yaml": "kind: Deployment\nimage: web:2\n"})
    moved = await fetch(source)
    assert moved.fetched
    assert moved.commit == pushed
    assert GitMirror(served.url).has_commit(pushed)
    if served.uploads and uploads is not None:
        assert served.uploads() == uploads + 1


async def test_missing_branch_names_the_refs_that_exist(served: Served, origin: Origin) -> None:
    origin.commit({"x": "1"}, branch="release-1.x")
    origin.tag("v0.9.0", origin.head())
    with pytest.raises(GitRefNotFoundError) as caught:
        await resolve(served.source(RefSpec.branch("mian")))
    message = str(caught.value)
    assert "branch 'mian' does not exist" in message
    assert "branches: main, release-1.x" in message
    assert "tags: v0.9.0" in message
    assert not caught.value.retryable


async def test_semver_range_without_a_match_names_the_tags(origin: Origin) -> None:
    for version in ["v1.0.0", "v1.1.0", "latest"]:
        origin.tag(version, origin.head())
    source = GitSource(f"file://{origin.path}", RefSpec.semver(">=2"))
    with pytest.raises(GitRefNotFoundError) as caught:
        await resolve(source)
    message = str(caught.value)
    assert "matches version range '>=2'" in message
    assert "version tags are: v1.1.0, v1.0.0" in message


async def test_missing_tag_and_unknown_commit(origin: Origin) -> None:
    url = f"file://{origin.path}"
    with pytest.raises(GitRefNotFoundError, match="tag 'v9' does not exist"):
        await resolve(GitSource(url, RefSpec.tag("v9")))
    with pytest.raises(GitRefNotFoundError, match=r"commit 0{40} does not exist.*branches: main"):
        await fetch(GitSource(url, RefSpec.commit("0" * 40)))


async def test_commit_on_no_branch_is_not_found_after_force_push(origin: Origin) -> None:
    old = origin.head()
    # Rewrite main so that `old` is reachable from no ref at all.
    origin.repo.references["refs/heads/main"].delete()
    origin.commit({"other": "history"})
    url = f"file://{origin.path}"
    result = await fetch(GitSource(url, RefSpec.branch("main")))
    assert result.fetched
    assert not GitMirror(url).has_commit(old)


async def test_unreachable_host_is_a_retryable_source_error() -> None:
    source = GitSource(f"http://127.0.0.1:{closed_port()}/org/app.git", RefSpec.branch("main"))
    with pytest.raises(SourceError) as caught:
        await fetch(source)
    assert type(caught.value) is SourceError
    assert caught.value.retryable
    assert "127.0.0.1" in str(caught.value)


async def test_missing_repository_over_http(http_server: GitHttpServer) -> None:
    with pytest.raises(SourceError, match="not found"):
        await resolve(GitSource(http_server.url("org/nothing.git"), RefSpec.branch("main")))


async def test_concurrent_fetches_of_one_repository_take_turns(
    origin: Origin, http_server: GitHttpServer
) -> None:
    url = http_server.url("org/app.git")
    results = await asyncio.gather(
        *(fetch(GitSource(url, RefSpec.branch("main"))) for _ in range(4))
    )
    assert {r.commit for r in results} == {origin.head()}
    assert sum(r.fetched for r in results) == 1
    assert http_server.uploads() == 1


async def test_https_and_ssh_spellings_share_one_mirror(
    origin: Origin, http_server: GitHttpServer
) -> None:
    via_http = GitMirror(http_server.url("org/app.git"))
    same = GitMirror("git@127.0.0.1:org/app.git")
    assert via_http.path == same.path
    await fetch(GitSource(http_server.url("org/app.git"), RefSpec.branch("main")))
    assert same.has_commit(origin.head())
    assert pygit2.Repository(str(via_http.path)).is_bare
