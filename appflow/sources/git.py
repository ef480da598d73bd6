"""Git sources: the one place appflow talks to git (and the only importer of pygit2).

This module owns:

- a bare **mirror** per repository at ``cache_dir()/git/mirrors/<sha256 of the
  normalized URL>``, guarded by an ``fcntl`` file lock so that concurrent fetches of
  one repository (threads or processes) take turns;
- **resolving** a branch, tag, commit or semver range of tags to a commit by listing
  the remote's refs (``ls-remote``), which costs one round trip and no objects, and
  **fetching** only when that commit is not in the mirror yet;
- **checking out** a commit's tree into ``cache_dir()/git/checkouts/<commit>``: one
  read-only folder per commit, written once to a temporary folder and renamed into
  place so a reader never sees half a tree;
- the paths that **changed** between two commits, for the poller;
- **credentials** (HTTPS token or basic, SSH key) read from files or environment
  variables at the moment they are needed, never stored in objects, never logged.

pygit2 blocks, so the engine calls the ``async`` functions at the bottom, which run
the synchronous ``GitMirror`` methods in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import posixpath
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Literal

import pygit2
from pygit2.enums import CredentialType, FetchPrune, FileMode, Option

from appflow.errors import (
    AppflowError,
    ConfigError,
    GitAuthError,
    GitHostKeyError,
    GitRefNotFoundError,
    SourceError,
    Where,
)
from appflow.model.giturl import is_local_url, is_ssh_url, normalize_repo_url, redact_url
from appflow.model.semver import highest_match, parse_constraint, parse_version, sort_versions
from appflow.paths import cache_dir
from appflow.sources.folders import check_symlinks

_log = logging.getLogger(__name__)

_HEADS = "refs/heads/"
_TAGS = "refs/tags/"
_MIRROR_REFSPECS = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
_SHOWN_REFS = 10
"""How many existing refs an error about a missing ref lists."""

# libgit2 waits forever on a host that drops packets; an edge link may be slow but
# a poll must not hang the daemon.
_CONNECT_TIMEOUT_MS = 15_000
_SERVER_TIMEOUT_MS = 120_000


# --------------------------------------------------------------------------- auth


AuthKind = Literal["none", "token", "basic", "ssh"]


@dataclass(frozen=True, kw_only=True)
class GitAuth:
    """How to authenticate to a git server; holds where secrets are, never the secrets.

    Secrets are read from a file or an environment variable each time they are
    needed, so a rotated token is picked up without a restart. Build one with
    ``GitAuth.none()``, ``GitAuth.token(...)``, ``GitAuth.basic(...)`` or
    ``GitAuth.ssh(...)``.
    """

    kind: AuthKind = "none"
    username: str | None = None
    token_file: Path | None = None
    token_env: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    private_key_file: Path | None = None
    private_key_env: str | None = None
    """Environment variable holding the private key itself (PEM/OpenSSH text)."""
    public_key_file: Path | None = None
    passphrase_file: Path | None = None
    passphrase_env: str | None = None
    known_hosts_file: Path | None = None
    """SSH: the known_hosts file to check the server's key in (default ~/.ssh/known_hosts)."""
    insecure_accept_host_key: bool = False
    """SSH: accept any server key. For tests and first contact only."""

    @classmethod
    def none(cls) -> GitAuth:
        return cls()

    @classmethod
    def token(
        cls,
        *,
        file: Path | str | None = None,
        env: str | None = None,
        username: str = "x-access-token",
    ) -> GitAuth:
        """HTTPS token, sent as the password of ``username`` (GitHub, GitLab, Gitea accept this)."""
        return cls(kind="token", username=username, token_file=_path(file), token_env=env)

    @classmethod
    def basic(
        cls,
        *,
        username: str,
        password_file: Path | str | None = None,
        password_env: str | None = None,
    ) -> GitAuth:
        return cls(
            kind="basic",
            username=username,
            password_file=_path(password_file),
            password_env=password_env,
        )

    @classmethod
    def ssh(
        cls,
        *,
        private_key_file: Path | str | None = None,
        private_key_env: str | None = None,
        public_key_file: Path | str | None = None,
        passphrase_file: Path | str | None = None,
        passphrase_env: str | None = None,
        known_hosts_file: Path | str | None = None,
        insecure_accept_host_key: bool = False,
        username: str | None = None,
    ) -> GitAuth:
        """SSH key auth; the user comes from the URL (``git@host``), else ``username``, else 'git'."""
        return cls(
            kind="ssh",
            username=username,
            private_key_file=_path(private_key_file),
            private_key_env=private_key_env,
            public_key_file=_path(public_key_file),
            passphrase_file=_path(passphrase_file),
            passphrase_env=passphrase_env,
            known_hosts_file=_path(known_hosts_file),
            insecure_accept_host_key=insecure_accept_host_key,
        )

    def __post_init__(self) -> None:
        def one_of(what: str, file: Path | None, env: str | None) -> None:
            if (file is None) == (env is None):
                raise ConfigError(
                    f"{self.kind} git auth needs exactly one of {what}_file and {what}_env",
                    where=Where(field="auth"),
                )

        if self.kind == "token":
            one_of("token", self.token_file, self.token_env)
        elif self.kind == "basic":
            if not self.username:
                raise ConfigError("basic git auth needs a username", where=Where(field="auth"))
            one_of("password", self.password_file, self.password_env)
        elif self.kind == "ssh":
            one_of("private_key", self.private_key_file, self.private_key_env)
            if self.passphrase_file is not None and self.passphrase_env is not None:
                raise ConfigError(
                    "ssh git auth takes passphrase_file or passphrase_env, not both",
                    where=Where(field="auth"),
                )

    def __repr__(self) -> str:
        # Only where secrets live is shown; the dataclass holds no secret, but say so
        # explicitly so that adding a field cannot leak one into a log by accident.
        shown = {
            "kind": self.kind,
            "username": self.username,
            "token_file": self.token_file,
            "token_env": self.token_env,
            "password_file": self.password_file,
            "password_env": self.password_env,
            "private_key_file": self.private_key_file,
            "private_key_env": self.private_key_env,
            "known_hosts_file": self.known_hosts_file,
            "insecure_accept_host_key": self.insecure_accept_host_key or None,
        }
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items() if v is not None)
        return f"GitAuth({inner})"

    def describe(self) -> str:
        """Where the credentials come from, for error messages (never the secret)."""
        if self.kind == "none":
            return "no credentials"
        source = {
            "token": _secret_origin(self.token_file, self.token_env),
            "basic": _secret_origin(self.password_file, self.password_env),
            "ssh": _secret_origin(self.private_key_file, self.private_key_env),
        }[self.kind]
        user = f" as {self.username!r}" if self.username else ""
        return f"{self.kind} credentials{user} from {source}"


def _path(value: Path | str | None) -> Path | None:
    return Path(value) if value is not None else None


def _secret_origin(file: Path | None, env: str | None) -> str:
    return f"file {file}" if file is not None else f"environment variable {env}"


def _read_secret(what: str, file: Path | None, env: str | None, url: str) -> str:
    try:
        if file is not None:
            return file.read_text().rstrip("\r\n")
    except OSError as err:
        raise GitAuthError(
            f"cannot read the {what} for {redact_url(url)} from {file}: {err.strerror}",
            hint="check that the file exists and appflow may read it",
        ) from err
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise GitAuthError(
                f"the {what} for {redact_url(url)} is read from environment variable {env}, which is not set",
                hint=f"export {env} before starting appflow",
            )
        return value.rstrip("\r\n")
    raise GitAuthError(f"no {what} is configured for {redact_url(url)}")


# ------------------------------------------------------------------------ sources


RefKind = Literal["head", "branch", "tag", "commit", "semver"]


@dataclass(frozen=True)
class RefSpec:
    """What to follow in a repository: its default branch, a branch, a tag, a commit or a semver range of tags."""

    kind: RefKind
    value: str = ""

    @classmethod
    def head(cls) -> RefSpec:
        """The remote's default branch (what HEAD points to)."""
        return cls("head")

    @classmethod
    def branch(cls, name: str) -> RefSpec:
        return cls("branch", name.removeprefix(_HEADS))

    @classmethod
    def tag(cls, name: str) -> RefSpec:
        return cls("tag", name.removeprefix(_TAGS))

    @classmethod
    def commit(cls, sha: str) -> RefSpec:
        return cls("commit", sha)

    @classmethod
    def semver(cls, constraint: str) -> RefSpec:
        return cls("semver", constraint)

    def __post_init__(self) -> None:
        if self.kind == "commit":
            sha = self.value.lower()
            if len(sha) not in (40, 64) or any(c not in "0123456789abcdef" for c in sha):
                raise ConfigError(
                    f"{self.value!r} is not a full commit id",
                    where=Where(field="ref.commit"),
                    hint="give all 40 hex digits; a short id can become ambiguous",
                )
            object.__setattr__(self, "value", sha)
        elif self.kind == "semver":
            parse_constraint(self.value)  # fail early, with the constraint's own error
        elif self.kind in ("branch", "tag") and not self.value:
            raise ConfigError(
                f"the {self.kind} name is empty", where=Where(field=f"ref.{self.kind}")
            )

    def __str__(self) -> str:
        return "HEAD" if self.kind == "head" else f"{self.kind} {self.value!r}"


@dataclass(frozen=True)
class GitSource:
    """A repository and what to follow in it."""

    url: str
    ref: RefSpec = field(default_factory=RefSpec.head)
    auth: GitAuth = field(default_factory=GitAuth.none)


@dataclass(frozen=True, kw_only=True)
class ResolvedRef:
    """The commit a ref names right now."""

    commit: str
    ref_name: str
    """The full ref (refs/heads/main, refs/tags/v1.2.0), or the commit id for a commit ref."""
    version: str | None = None
    """For tags that are semantic versions: the version (1.2.0 for tag v1.2.0)."""


@dataclass(frozen=True, kw_only=True)
class FetchResult:
    """A resolved ref whose commit is now in the mirror, and whether objects were fetched for it."""

    ref: ResolvedRef
    fetched: bool

    @property
    def commit(self) -> str:
        return self.ref.commit


@dataclass(frozen=True)
class _RemoteRefs:
    """What the remote advertised: refs to commit ids (annotated tags peeled)."""

    refs: dict[str, str]
    head_target: str | None

    def names(self, prefix: str) -> list[str]:
        return sorted(n.removeprefix(prefix) for n in self.refs if n.startswith(prefix))


# ------------------------------------------------------------------------- mirror


def mirrors_dir() -> Path:
    return cache_dir() / "git" / "mirrors"


def checkouts_dir() -> Path:
    return cache_dir() / "git" / "checkouts"


class GitMirror:
    """The bare mirror of one repository and the synchronous operations on it.

    The mirror holds no remote configuration: every network call uses the URL it is
    given, so the HTTPS and SSH spellings of one repository share one mirror.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.key = normalize_repo_url(url)
        digest = hashlib.sha256(self.key.encode()).hexdigest()
        self.path = mirrors_dir() / digest
        self._lock_path = mirrors_dir() / f"{digest}.lock"

    def __repr__(self) -> str:
        return f"GitMirror({redact_url(self.url)!r})"

    # -- locking and opening

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this mirror's file lock (blocks; each call opens its own descriptor,
        so threads of one process exclude each other as processes do)."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def open(self) -> pygit2.Repository:
        """The mirror repository, created on first use."""
        if not (self.path / "HEAD").exists():
            with self.lock():
                if not (self.path / "HEAD").exists():
                    self.path.mkdir(parents=True, exist_ok=True)
                    pygit2.init_repository(str(self.path), bare=True)
                    _log.info("created git mirror of %s at %s", redact_url(self.url), self.path)
        return pygit2.Repository(str(self.path))

    def has_commit(self, sha: str) -> bool:
        if not (self.path / "HEAD").exists():
            return False
        return _peel_commit(self.open(), sha) is not None

    # -- remote refs

    def list_remote(self, auth: GitAuth) -> _RemoteRefs:
        """List the remote's refs without fetching objects (git ls-remote)."""
        repo = self.open()
        remote = repo.remotes.create_anonymous(self.url)
        with _network(self.url, auth, "list the refs of") as callbacks:
            heads = remote.list_heads(callbacks=callbacks, proxy=_proxy(self.url))
        refs: dict[str, str] = {}
        peeled: dict[str, str] = {}
        head_target: str | None = None
        for head in heads:
            name = head.name or ""
            if name.endswith("^{}"):
                peeled[name[:-3]] = str(head.oid)
            elif name == "HEAD":
                head_target = head.symref_target
                refs["HEAD"] = str(head.oid)
            elif name.startswith((_HEADS, _TAGS)):
                refs[name] = str(head.oid)
        refs.update({name: oid for name, oid in peeled.items() if name in refs})
        return _RemoteRefs(refs, head_target)

    def resolve(self, source: GitSource) -> ResolvedRef:
        """The commit the source's ref names on the remote now; no objects are fetched."""
        ref = source.ref
        if ref.kind == "commit":
            # A commit id never moves: when the mirror has it, not even a listing is needed.
            return ResolvedRef(commit=ref.value, ref_name=ref.value)
        remote = self.list_remote(source.auth)
        resolved = self._pick(source, remote)
        # Annotated tags the server did not peel: peel locally when we can.
        commit = _peel_commit(self.open(), resolved.commit)
        if commit is not None and commit != resolved.commit:
            resolved = ResolvedRef(
                commit=commit, ref_name=resolved.ref_name, version=resolved.version
            )
        return resolved

    def _pick(self, source: GitSource, remote: _RemoteRefs) -> ResolvedRef:
        ref, url = source.ref, redact_url(source.url)
        if ref.kind == "head":
            target = remote.head_target
            if target and target in remote.refs:
                return ResolvedRef(commit=remote.refs[target], ref_name=target)
            if "HEAD" in remote.refs:
                return ResolvedRef(commit=remote.refs["HEAD"], ref_name="HEAD")
            raise GitRefNotFoundError(
                f"{url} has no default branch (HEAD){_existing(remote)}",
                hint="name a branch, tag or version range to follow",
            )
        if ref.kind in ("branch", "tag"):
            full = (_HEADS if ref.kind == "branch" else _TAGS) + ref.value
            if full in remote.refs:
                version = parse_version(ref.value) if ref.kind == "tag" else None
                return ResolvedRef(
                    commit=remote.refs[full],
                    ref_name=full,
                    version=str(version) if version else None,
                )
            raise GitRefNotFoundError(
                f"{ref.kind} {ref.value!r} does not exist in {url}{_existing(remote)}",
                hint=f"{ref.kind} names are case-sensitive; check the name, or push the {ref.kind} first",
            )
        # semver
        tags = remote.names(_TAGS)
        best = highest_match(ref.value, tags)
        if best is None:
            versions = sort_versions(tags)
            shown = ", ".join(versions[:_SHOWN_REFS]) + (
                " ..." if len(versions) > _SHOWN_REFS else ""
            )
            raise GitRefNotFoundError(
                f"no tag of {url} matches version range {ref.value!r}; "
                + (f"version tags are: {shown}" if versions else "it has no version tags"),
                hint="widen the range or push a matching tag",
            )
        tag, version = best
        return ResolvedRef(
            commit=remote.refs[_TAGS + tag], ref_name=_TAGS + tag, version=str(version)
        )

    # -- fetch

    def fetch(self, source: GitSource) -> FetchResult:
        """Resolve the source's ref and fetch only if the mirror lacks that commit."""
        resolved = self.resolve(source)
        if self.has_commit(resolved.commit):
            _log.debug("%s at %s: already in the mirror", source.ref, resolved.commit)
            return FetchResult(ref=resolved, fetched=False)
        self.open()  # create the mirror before taking the lock: open() takes it too
        fetched = False
        with self.lock():
            # Another thread or process may have fetched it while we waited.
            if not self.has_commit(resolved.commit):
                fetched = True
                self._fetch_all(source)
                if source.ref.kind == "commit" and not self.has_commit(resolved.commit):
                    self._fetch_oid(source, resolved.commit)
        commit = _peel_commit(self.open(), resolved.commit)
        if commit is None:
            if source.ref.kind == "commit":
                remote = self.list_remote(source.auth)
                raise GitRefNotFoundError(
                    f"commit {resolved.commit} does not exist in {redact_url(source.url)}"
                    f"{_existing(remote)}",
                    hint="check the commit id; it may be on a branch that was force-pushed away",
                )
            raise SourceError(
                f"fetching {redact_url(source.url)} did not bring {resolved.ref_name} "
                f"at {resolved.commit}; the ref probably moved during the fetch",
            )
        if commit != resolved.commit:
            resolved = ResolvedRef(
                commit=commit, ref_name=resolved.ref_name, version=resolved.version
            )
        return FetchResult(ref=resolved, fetched=fetched)

    def _fetch_all(self, source: GitSource) -> None:
        repo = self.open()
        remote = repo.remotes.create_anonymous(source.url)
        with _network(source.url, source.auth, "fetch") as callbacks:
            stats = remote.fetch(
                _MIRROR_REFSPECS,
                callbacks=callbacks,
                prune=FetchPrune.PRUNE,
                proxy=_proxy(source.url),
            )
        _log.info(
            "fetched %s: %d objects, %d bytes",
            redact_url(source.url),
            stats.received_objects,
            stats.received_bytes,
        )

    def _fetch_oid(self, source: GitSource, sha: str) -> None:
        # Servers that allow fetching any reachable commit (GitHub, GitLab, git with
        # uploadpack.allowReachableSHA1InWant) serve a commit no branch points to.
        repo = self.open()
        remote = repo.remotes.create_anonymous(source.url)
        with (
            contextlib.suppress(SourceError),
            _network(source.url, source.auth, "fetch") as callbacks,
        ):
            remote.fetch([sha], callbacks=callbacks, proxy=_proxy(source.url))

    # -- checkout

    def checkout(self, commit: str, *, subpath: str = "") -> Path:
        """The folder holding the tree of ``commit`` (or ``subpath`` inside it); read-only."""
        relative = _clean_subpath(subpath)
        repo = self.open() if (self.path / "HEAD").exists() else None
        found = _lookup_commit(repo, commit) if repo is not None else None
        if repo is None or found is None:
            raise GitRefNotFoundError(
                f"commit {commit} is not in the mirror of {redact_url(self.url)}",
                hint="fetch the source first; the commit may not exist in the repository",
            )
        sha = str(found.id)
        root = checkouts_dir() / sha
        if relative:
            try:
                found.tree[relative]
            except KeyError:
                raise SourceError(
                    f"path {relative!r} does not exist in commit {sha} of {redact_url(self.url)}",
                    hint="check the app's path in the repository; it may have been moved or renamed",
                ) from None
        if not root.is_dir():
            _write_checkout(repo, found.tree, root, sha)
        return root / relative if relative else root

    # -- changes

    def changed_paths(self, old_commit: str, new_commit: str) -> set[str]:
        """Paths of files added, removed or changed between two commits in the mirror."""
        repo = self.open()
        trees: list[pygit2.Tree] = []
        for sha in (old_commit, new_commit):
            found = _lookup_commit(repo, sha)
            if found is None:
                raise GitRefNotFoundError(
                    f"commit {sha} is not in the mirror of {redact_url(self.url)}",
                    hint="fetch the source first",
                )
            trees.append(found.tree)
        diff = trees[0].diff_to_tree(trees[1])
        paths: set[str] = set()
        for delta in diff.deltas:
            paths.add(delta.old_file.path)
            paths.add(delta.new_file.path)
        return paths


def _existing(remote: _RemoteRefs) -> str:
    branches = remote.names(_HEADS)
    tags = sort_versions(remote.names(_TAGS)) or remote.names(_TAGS)
    parts = []
    for label, names in (("branches", branches), ("tags", tags)):
        if names:
            more = f" and {len(names) - _SHOWN_REFS} more" if len(names) > _SHOWN_REFS else ""
            parts.append(f"{label}: {', '.join(names[:_SHOWN_REFS])}{more}")
    return "; it has " + "; ".join(parts) if parts else "; it has no branches or tags"


def _lookup_commit(repo: pygit2.Repository, sha: str) -> pygit2.Commit | None:
    try:
        obj = repo.get(sha)
    except (ValueError, KeyError):
        return None
    if obj is None:
        return None
    try:
        return obj.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError, TypeError):
        return None


def _peel_commit(repo: pygit2.Repository, sha: str) -> str | None:
    found = _lookup_commit(repo, sha)
    return str(found.id) if found is not None else None


# ------------------------------------------------------------------- checkouts


def _clean_subpath(subpath: str) -> str:
    if not subpath or subpath in (".", "/"):
        return ""
    path = PurePosixPath(subpath.strip("/"))
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            f"path {subpath!r} leaves the repository",
            where=Where(field="path"),
            hint="give a path inside the repository, e.g. apps/web",
        )
    return "/".join(p for p in path.parts if p != ".")


def _write_checkout(repo: pygit2.Repository, tree: pygit2.Tree, root: Path, sha: str) -> None:
    """Write ``tree`` to ``root`` atomically: a temporary folder renamed into place."""
    root.parent.mkdir(parents=True, exist_ok=True)
    temp = root.parent / f".tmp-{sha}-{uuid.uuid4().hex[:8]}"
    try:
        _write_tree(repo, tree, temp, "")
        check_symlinks(temp, origin=f"commit {sha}")
        _make_read_only(temp)
        try:
            os.rename(temp, root)
        except OSError:
            # Another writer won the race; its folder holds the same tree.
            if not root.is_dir():
                raise
    finally:
        if temp.exists():
            _remove_tree(temp)
    _log.debug("checked out %s to %s", sha, root)


def _write_tree(repo: pygit2.Repository, tree: pygit2.Tree, folder: Path, relative: str) -> None:
    folder.mkdir()
    for entry in tree:
        name = entry.name or ""
        if name in ("", ".", "..", ".git") or "/" in name or "\0" in name:
            raise ConfigError(
                f"the repository holds an unsafe path {posixpath.join(relative, name)!r}",
                hint="git itself refuses to check this out; fix the repository",
            )
        path = folder / name
        mode = entry.filemode
        if mode == FileMode.TREE:
            subtree = repo[entry.id]
            assert isinstance(subtree, pygit2.Tree)
            _write_tree(repo, subtree, path, posixpath.join(relative, name))
        elif mode == FileMode.COMMIT:
            # A submodule: its commit lives in another repository, not fetched here.
            path.mkdir()
        elif mode == FileMode.LINK:
            blob = repo[entry.id]
            assert isinstance(blob, pygit2.Blob)
            os.symlink(blob.data.decode(), path)
        else:
            blob = repo[entry.id]
            assert isinstance(blob, pygit2.Blob)
            path.write_bytes(blob.data)
            if mode == FileMode.BLOB_EXECUTABLE:
                path.chmod(0o700)


def _make_read_only(root: Path) -> None:
    # Read-only, and for the owner only: a checkout of a private repository is
    # as private as the repository (the cache folder is 0700 too).
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, 0o400 | (mode & stat.S_IXUSR))
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o500)
    os.chmod(root, 0o500)


def _remove_tree(root: Path) -> None:
    # Folders are read-only once finished; make them writable again to remove them.
    for folder, dirs, _files in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    os.chmod(root, 0o700)
    shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ network glue


@cache
def _configure_libgit2() -> None:
    pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, _CONNECT_TIMEOUT_MS)
    pygit2.option(Option.SET_SERVER_TIMEOUT, _SERVER_TIMEOUT_MS)


def _proxy(url: str) -> Literal[True] | None:
    # Auto-detect (http.proxy, HTTPS_PROXY, NO_PROXY) for network URLs: edge sites
    # often sit behind a proxy. Local repositories never go through one.
    return None if is_local_url(url) else True


class _Callbacks(pygit2.RemoteCallbacks):
    """Hands libgit2 the source's credentials, once: a refused secret is not retried."""

    def __init__(self, url: str, auth: GitAuth) -> None:
        super().__init__()
        self._url = url
        self._auth = auth
        self._offered: set[str] = set()

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        auth, shown = self._auth, redact_url(self._url)
        if auth.kind == "none":
            raise GitAuthError(
                f"{shown} asks for credentials and the source has none",
                hint="add a token, basic or ssh credential to the repository",
            )
        if auth.kind in ("token", "basic"):
            if not allowed_types & CredentialType.USERPASS_PLAINTEXT:
                raise GitAuthError(
                    f"{shown} does not take {auth.kind} credentials (it asks for {allowed_types!r})",
                    hint="use an https:// URL with a token or password, or SSH credentials for ssh URLs",
                )
            # libgit2 asks again after the server refuses a secret; asking again
            # would return the same secret forever, so the second ask means "refused".
            self._refused_if_asked_twice("userpass")
            if auth.kind == "token":
                secret = _read_secret("token", auth.token_file, auth.token_env, self._url)
            else:
                secret = _read_secret("password", auth.password_file, auth.password_env, self._url)
            return pygit2.UserPass(auth.username or "x-access-token", secret)
        user = username_from_url or auth.username or "git"
        if allowed_types & CredentialType.USERNAME and not allowed_types & (
            CredentialType.SSH_KEY | CredentialType.SSH_MEMORY
        ):
            self._refused_if_asked_twice("username")
            return pygit2.Username(user)
        if not allowed_types & (CredentialType.SSH_KEY | CredentialType.SSH_MEMORY):
            raise GitAuthError(
                f"{shown} does not take SSH keys (it asks for {allowed_types!r})",
                hint="use an ssh:// or git@host:org/repo URL with SSH credentials",
            )
        self._refused_if_asked_twice("key")
        passphrase = ""
        if auth.passphrase_file is not None or auth.passphrase_env is not None:
            passphrase = _read_secret(
                "key passphrase", auth.passphrase_file, auth.passphrase_env, self._url
            )
        if auth.private_key_file is not None:
            if not auth.private_key_file.is_file():
                raise GitAuthError(
                    f"the SSH key for {shown} does not exist: {auth.private_key_file}",
                    hint="check the private_key_file path",
                )
            public = auth.public_key_file
            if public is None and Path(f"{auth.private_key_file}.pub").is_file():
                public = Path(f"{auth.private_key_file}.pub")
            return pygit2.Keypair(user, public, auth.private_key_file, passphrase)
        key = _read_secret("SSH key", None, auth.private_key_env, self._url) + "\n"
        return pygit2.KeypairFromMemory(user, None, key, passphrase)

    def _refused_if_asked_twice(self, what: str) -> None:
        if what in self._offered:
            raise GitAuthError(
                f"{redact_url(self._url)} refused the {self._auth.describe()}",
                hint=_auth_hint(self._auth),
            )
        self._offered.add(what)

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        # pygit2 lets every SSH host key through unless this says otherwise; libgit2
        # has already looked the key up in known_hosts and tells us in `valid`.
        if valid:
            return True
        return is_ssh_url(self._url) and self._auth.insecure_accept_host_key


def _auth_hint(auth: GitAuth) -> str:
    if auth.kind == "token":
        return "check that the token is current, not expired, and may read this repository"
    if auth.kind == "basic":
        return "check the username and password, and that the user may read this repository"
    if auth.kind == "ssh":
        return "check that the key's public half is registered with the server for this user"
    return "add credentials to the repository"


# libgit2 reads the SSH known_hosts file from its process-wide home folder, so a
# source with its own known_hosts file points that folder at a copy for the length
# of its network call. Every host-key-checked SSH call holds the lock, so no call
# is checked against another source's known_hosts file.
_HOMEDIR_LOCK = threading.Lock()


@contextlib.contextmanager
def _known_hosts(url: str, auth: GitAuth) -> Iterator[None]:
    if not is_ssh_url(url) or auth.insecure_accept_host_key:
        yield
        return
    if auth.known_hosts_file is None:
        with _HOMEDIR_LOCK:
            yield
        return
    try:
        content = auth.known_hosts_file.read_bytes()
    except OSError as err:
        raise GitAuthError(
            f"cannot read the known_hosts file for {redact_url(url)}: "
            f"{auth.known_hosts_file}: {err.strerror}",
            hint="check the known_hosts_file path",
        ) from err
    home = cache_dir() / "git" / "ssh-home" / hashlib.sha256(content).hexdigest()[:16]
    known = home / ".ssh" / "known_hosts"
    if not known.exists():
        known.parent.mkdir(parents=True, exist_ok=True)
        temp = known.with_suffix(f".{uuid.uuid4().hex[:8]}")
        temp.write_bytes(content)
        os.replace(temp, known)
    with _HOMEDIR_LOCK:
        previous = pygit2.option(Option.GET_HOMEDIR)
        pygit2.option(Option.SET_HOMEDIR, str(home))
        try:
            yield
        finally:
            pygit2.option(Option.SET_HOMEDIR, previous)


@contextlib.contextmanager
def _network(url: str, auth: GitAuth, doing: str) -> Iterator[_Callbacks]:
    """Run one network call with the source's credentials; translate libgit2's errors."""
    _configure_libgit2()
    callbacks = _Callbacks(url, auth)
    try:
        with _known_hosts(url, auth):
            yield callbacks
    except AppflowError:
        raise
    except (pygit2.GitError, OSError, ValueError, KeyError) as err:
        raise _translate(err, url, auth, doing) from err


def _translate(err: Exception, url: str, auth: GitAuth, doing: str) -> AppflowError:
    shown = redact_url(url)
    text = str(err)
    low = text.lower()
    if "hostkey" in low or "host key" in low or isinstance(err, pygit2.errors.CertificateError):
        if is_ssh_url(url):
            return GitHostKeyError(
                f"cannot {doing} {shown}: the server's identity could not be verified: its host "
                f"key is not in the known_hosts file ({text})",
                hint="add the server's key to known_hosts (ssh-keyscan) or set known_hosts_file",
            )
        return GitAuthError(
            f"cannot {doing} {shown}: the server's TLS certificate is not trusted ({text})",
            hint="install the certificate authority that signed it in the system's trust store, "
            "or point SSL_CERT_FILE at a bundle that holds it",
        )
    if any(
        s in low
        for s in ("401", "403", "authenticat", "credential", "permission denied", "unauthorized")
    ):
        return GitAuthError(
            f"cannot {doing} {shown} with {auth.describe()}: {text}",
            hint=_auth_hint(auth),
        )
    if (
        "404" in low
        or "not found" in low
        or "does not appear to be a git repository" in low
        or ("could not find repository" in low)
    ):
        return SourceError(
            f"cannot {doing} {shown}: the repository was not found ({text})",
            hint="check the URL; some servers answer 'not found' to a private repository without credentials",
        )
    return SourceError(
        f"cannot {doing} {shown}: {text}",
        hint="check that the host is reachable from here; appflow retries with backoff",
    )


# ----------------------------------------------------------------- engine calls


async def resolve(source: GitSource) -> ResolvedRef:
    """The commit the source's ref names on the remote now (one listing, no fetch)."""
    return await asyncio.to_thread(GitMirror(source.url).resolve, source)


async def fetch(source: GitSource) -> FetchResult:
    """Make the source's current commit available in the mirror, fetching only if needed."""
    return await asyncio.to_thread(GitMirror(source.url).fetch, source)


async def checkout(source_or_url: GitSource | str, commit: str, *, subpath: str = "") -> Path:
    """The read-only folder holding ``commit``'s tree, or ``subpath`` inside it.

    Given a source, a commit missing from the mirror is fetched first.
    """

    def run() -> Path:
        if isinstance(source_or_url, GitSource):
            mirror = GitMirror(source_or_url.url)
            if not mirror.has_commit(commit):
                mirror.fetch(
                    GitSource(source_or_url.url, RefSpec.commit(commit), source_or_url.auth)
                )
        else:
            mirror = GitMirror(source_or_url)
        return mirror.checkout(commit, subpath=subpath)

    return await asyncio.to_thread(run)


async def changed_paths(url: str, old_commit: str, new_commit: str) -> set[str]:
    """Paths of files that differ between two fetched commits of one repository."""
    return await asyncio.to_thread(GitMirror(url).changed_paths, old_commit, new_commit)
