"""Sources: where an app's files come from, one resolver per source kind.

A resolver turns an AppRecord into a Source (a local folder, a digest of its content
for the render cache, and the SourceRef its revision records) and reads the app's
AppDefinition from it. Git and local folders are resolved here; the catalog registers
its own resolver (``appflow.engine.catalog.source``) into RESOLVERS when it is
imported, so the engine never imports the catalog.

A git source resolves its ref once: a sync given a commit (the poller's or a webhook's)
checks that commit out and asks the remote nothing; without one it lists the remote's
refs once and fetches only when the mirror lacks the commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from appflow.errors import (
    AppflowError,
    ConfigError,
    GitAuthError,
    GitHostKeyError,
    SourceError,
    Where,
)
from appflow.model.appdef import AppDefinition
from appflow.model.giturl import redact_url
from appflow.model.records import (
    AppRecord,
    AppSource,
    GitCommit,
    LocalContent,
    RepoCredentials,
    RepoRecord,
    SourceRef,
)
from appflow.sources.appdef import load_app_definitions
from appflow.sources.folders import local_source_digest

if TYPE_CHECKING:
    from appflow.sources import git
    from appflow.store import Store

# Git sources (pygit2) are imported where an app needs them: a fresh `appflow
# sync` of a folder of YAML would otherwise spend a third of its time importing
# what it never uses.


@dataclass(frozen=True, kw_only=True)
class Source:
    """An app's source as a local folder, and what identifies its content."""

    root: Path
    digest: str
    """Identifies the content for the render cache."""
    ref: SourceRef
    """What the revision rendered from it records."""


class SourceResolver(Protocol):
    """Fetches one kind of source and reads app definitions from it."""

    async def fetch(
        self, app: AppRecord, repo: RepoRecord | None, *, commit: str | None, store: Store
    ) -> Source:
        """APP's source now (at COMMIT, when a caller already resolved it); what else it
        needs it reads from STORE (in a worker thread)."""
        ...

    async def definition(self, app: AppRecord, source: Source) -> AppDefinition:
        """APP's definition as SOURCE holds it."""
        ...


class Resolvers:
    """The resolver of each source kind."""

    def __init__(self) -> None:
        self._by_kind: dict[str, SourceResolver] = {}

    def register(self, kind: AppSource, resolver: SourceResolver) -> None:
        self._by_kind[kind] = resolver

    def of(self, app: AppRecord) -> SourceResolver:
        found = self._by_kind.get(app.source)
        if found is None:
            raise ConfigError(
                f"source kind {app.source!r} is not supported here",
                where=Where(app=app.name),
                hint="the catalog resolves its own apps: run this through a command that "
                "knows the catalog (appflow sync, appflow serve)",
            )
        return found


def ref_spec(ref: str) -> git.RefSpec:
    """A RepoRecord's ref as what to follow: HEAD, a branch, tag:T, semver:R or commit:SHA."""
    from appflow.sources import git

    if not ref or ref == "HEAD":
        return git.RefSpec.head()
    if ref.startswith("refs/tags/") or ref.startswith("tag:"):
        return git.RefSpec.tag(ref.removeprefix("tag:"))
    if ref.startswith("semver:"):
        return git.RefSpec.semver(ref.removeprefix("semver:"))
    if ref.startswith("commit:"):
        return git.RefSpec.commit(ref.removeprefix("commit:"))
    return git.RefSpec.branch(ref)


def git_auth(credentials: RepoCredentials) -> git.GitAuth:
    """How the git adapter signs in with a repository's recorded credentials."""
    from appflow.sources import git

    if credentials.kind == "ssh":
        return git.GitAuth.ssh(
            private_key_file=credentials.secret_file,
            known_hosts_file=credentials.known_hosts_file,
            username=credentials.username,
        )
    if credentials.kind == "token":
        return git.GitAuth.token(
            file=credentials.secret_file, username=credentials.username or "x-access-token"
        )
    if credentials.kind == "basic":
        assert credentials.username is not None  # RepoCredentials checks it
        return git.GitAuth.basic(
            username=credentials.username, password_file=credentials.secret_file
        )
    return git.GitAuth.none()


def git_source(repo: RepoRecord, *, commit: str | None = None) -> git.GitSource:
    """REPO as the git adapter follows it (at COMMIT when given), with its credentials:
    every fetch, listing and checkout of a repository goes through here."""
    from appflow.sources import git

    ref = git.RefSpec.commit(commit) if commit is not None else ref_spec(repo.ref)
    return git.GitSource(url=repo.url, ref=ref, auth=git_auth(repo.auth))


def repository_error(err: SourceError, repo: RepoRecord) -> SourceError:
    """ERR, met talking to REPO's server, naming the repository and how to change what
    appflow signs in with (the adapter knows the URL, not the registration)."""
    located = err.located(repo=repo.name)
    again = f"appflow repo add {repo.name} {redact_url(repo.url)}"
    if isinstance(err, GitHostKeyError):
        located.hint = (
            "the server's SSH host key is not the one appflow trusts for it: if the server's key "
            "changed on purpose, confirm the new key with its administrator, then register it: "
            f"{again} --ssh-key FILE --known-hosts FILE"
        )
    elif isinstance(err, GitAuthError):
        options = {
            "ssh": "--ssh-key FILE",
            "token": "--token-env VAR",
            "basic": "--username USER --password-env VAR",
            "none": "--ssh-key FILE, --token-env VAR or --username USER --password-env VAR",
        }[repo.auth.kind]
        located.hint = f"{err.hint}; to give appflow other credentials: {again} {options}"
    return located


async def read_definition(app: AppRecord, source: Source) -> AppDefinition:
    """The definition in APP's folder of SOURCE (appflow.yaml, fleet.yaml or defaults)."""
    try:
        found = await asyncio.to_thread(load_app_definitions, source.root, paths=(app.path or "",))
    except AppflowError as err:
        # A broken appflow.yaml is the app's problem: say which app.
        raise err.located(app=app.name) from err
    for definition in found:
        if definition.path == (app.path or "").strip("/"):
            # The registered name wins over the folder's default name.
            return definition if definition.name == app.name else replace(definition, name=app.name)
    raise ConfigError(
        f"no app definition found in folder {app.path or '.'!r} of {source.root}",
        where=Where(app=app.name),
        hint="the folder needs an appflow.yaml, a fleet.yaml, a Chart.yaml, a kustomization.yaml or manifests",
    )


class LocalResolver:
    """A folder on this machine; its content digest identifies it."""

    async def fetch(
        self, app: AppRecord, repo: RepoRecord | None, *, commit: str | None, store: Store
    ) -> Source:
        if not app.local_path:
            raise ConfigError("a local app needs a folder", where=Where(app=app.name))
        root = Path(app.local_path)
        if not root.is_dir():
            raise ConfigError(
                f"the folder {root} does not exist",
                where=Where(app=app.name),
                hint="appflow app add NAME --local DIR",
            )
        app_dir = root / app.path if app.path else root
        try:
            content = await asyncio.to_thread(local_source_digest, root, app_dir)
        except AppflowError as err:
            raise err.located(app=app.name) from None
        return Source(
            root=root,
            digest=f"local:{app.path}:{content}",
            ref=LocalContent(digest=content[:12]),
        )

    async def definition(self, app: AppRecord, source: Source) -> AppDefinition:
        return await read_definition(app, source)


class GitResolver:
    """A commit of a git repository, checked out read-only under the cache."""

    async def fetch(
        self, app: AppRecord, repo: RepoRecord | None, *, commit: str | None, store: Store
    ) -> Source:
        if repo is None:
            raise ConfigError("a git app needs a repository", where=Where(app=app.name))
        from appflow.sources import git

        spec = git_source(repo)
        try:
            if commit is None:
                commit = (await git.fetch(spec)).commit
            root = await git.checkout(spec, commit)
        except SourceError as err:
            raise repository_error(err, repo).located(app=app.name) from err
        return Source(root=root, digest=f"git:{commit}:{app.path}", ref=GitCommit(commit=commit))

    async def definition(self, app: AppRecord, source: Source) -> AppDefinition:
        return await read_definition(app, source)


RESOLVERS = Resolvers()
"""Every source kind the engine can sync; the catalog adds its own when imported."""
RESOLVERS.register("local", LocalResolver())
RESOLVERS.register("git", GitResolver())
