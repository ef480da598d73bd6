"""Repositories: registering one with the apps found in it, and noticing when it moves.

``register_repo`` is `appflow repo add`: a git URL (fetched once, its commit checked out)
or a local folder, and an AppRecord for every app definition found under its paths.
``refresh_repo`` is one poll: it lists the remote's refs once (or takes the commit a
signed webhook named), fetches only what the mirror lacks, and says which apps the new
commit touches: those whose folder changed since the commit they were last synced from.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from appflow.engine.recorder import Recorder
from appflow.engine.sources import git_source, repository_error
from appflow.errors import ConfigError, GitRefNotFoundError, NotFoundError, SourceError, Where
from appflow.model.appdef import AppDefinition
from appflow.model.giturl import is_http_url, is_ssh_url, redact_url
from appflow.model.records import (
    AppRecord,
    GitCommit,
    RepoAuthKind,
    RepoCredentials,
    RepoRecord,
    utc_now,
)
from appflow.paths import data_dir, write_private
from appflow.sources.appdef import load_app_definitions
from appflow.store import Store


def is_url(text: str) -> bool:
    """Whether TEXT names a remote git repository rather than a local folder."""
    return "://" in text or text.startswith("git@")


def discover_apps(
    repo: RepoRecord, root: Path, *, existing: Mapping[str, AppRecord]
) -> list[AppRecord]:
    """An AppRecord for each app definition under REPO's paths in ROOT.

    EXISTING are the apps registered now: re-adding a repository updates its own apps,
    but an app name another source uses is refused (taking it over would silently change
    what that app deploys).
    """
    definitions = load_app_definitions(root, paths=repo.paths or ("",))
    if not definitions:
        raise ConfigError(
            f"no apps found under {', '.join(repo.paths) or '.'} in {redact_url(repo.url)}",
            hint="a folder needs an appflow.yaml, fleet.yaml, Chart.yaml, kustomization.yaml or manifests",
        )
    for d in definitions:
        other = existing.get(d.name)
        if other is not None and other.repo != repo.name:
            raise ConfigError(
                f"an app named {d.name} already comes from {source_of(other)}; "
                f"repository {repo.name} cannot take it over",
                where=Where(app=d.name, file=d.definition_file or d.path or None),
                hint=f"give one of them another name (name: in its appflow.yaml or fleet.yaml), "
                f"or delete the other first: appflow app delete {d.name}",
            )
    return [app_record(d, repo=repo) for d in definitions]


def source_of(app: AppRecord) -> str:
    """Where APP comes from, in words for an error message."""
    if app.repo:
        return f"repository {app.repo}" + (f" (folder {app.path})" if app.path else "")
    if app.source == "catalog":
        return "the catalog"
    return f"the local folder {app.local_path}"


def app_record(definition: AppDefinition, *, repo: RepoRecord) -> AppRecord:
    remote = is_url(repo.url)
    return _declared(
        AppRecord(
            name=definition.name,
            source="git" if remote else "local",
            repo=repo.name,
            local_path=None if remote else repo.url,
            path=definition.path,
        ),
        definition,
    )


def _declared(record: AppRecord, definition: AppDefinition | None) -> AppRecord:
    """RECORD with what DEFINITION says that other apps' syncs and the daemon read."""
    if definition is None:
        return record
    return replace(
        record,
        policy=definition.sync_policy,
        labels=dict(definition.labels),
        depends_on=definition.depends_on,
        rollout=definition.rollout,
    )


def _refuse_other_source(
    store: Store, name: str, *, local: Path | None, repo: str | None, folder: str
) -> None:
    """Re-adding an app from where it comes from updates it; from elsewhere is refused.

    Replacing it silently would change what the app deploys, and the next sync would
    prune everything the old source declared.
    """
    try:
        existing = store.get_app(name)
    except NotFoundError:
        return
    same = existing.path == folder and (
        existing.repo == repo
        if repo is not None
        else existing.repo is None and existing.local_path == str(local.resolve() if local else "")
    )
    if same:
        return
    raise ConfigError(
        f"an app named {name} already comes from {source_of(existing)}",
        where=Where(app=name),
        hint=f"give the new app another name, or delete the old one first: appflow app delete {name}",
    )


def add_app(
    store: Store, *, name: str, local: Path | None = None, repo: str | None = None, path: str = ""
) -> AppRecord:
    """`appflow app add`: app NAME from a local folder (its definition is read now, so a
    broken one fails here) or from the registered repository REPO."""
    if (local is None) == (repo is None):
        raise ConfigError("give exactly one of --local DIR or --repo NAME")
    folder = path.strip("/")
    _refuse_other_source(store, name, local=local, repo=repo, folder=folder)
    if repo is not None:
        store.get_repo(repo)
        return store.put_app(AppRecord(name=name, source="git", repo=repo, path=folder))
    assert local is not None
    root = local.resolve()
    found = load_app_definitions(root, paths=(path,))
    declared = next((d for d in found if d.path == folder), None)
    record = AppRecord(name=name, source="local", local_path=str(root), path=folder)
    return store.put_app(_declared(record, declared))


@dataclass(frozen=True, kw_only=True)
class GivenCredentials:
    """Credentials `appflow repo add` was given: the secret itself, held only until it is
    written to the data folder (its repr shows no secret)."""

    kind: RepoAuthKind
    secret: bytes = field(repr=False)
    username: str | None = None
    known_hosts: bytes | None = field(default=None, repr=False)


def given_credentials(
    *,
    ssh_key: Path | None = None,
    known_hosts: Path | None = None,
    username: str | None = None,
    password_env: str | None = None,
    token_env: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> GivenCredentials | None:
    """The credentials `repo add`'s options name (None: a public repository).

    Secrets come from a file (an SSH key) or an environment variable (a password or a
    token), never from the command line, where shell history and `ps` would keep them.
    """
    chosen = [
        option
        for option, value in (
            ("--ssh-key", ssh_key),
            ("--password-env", password_env),
            ("--token-env", token_env),
        )
        if value is not None
    ]
    if len(chosen) > 1:
        raise ConfigError(
            f"{' and '.join(chosen)} exclude each other",
            hint="give one of --ssh-key FILE, --username USER --password-env VAR or --token-env VAR",
        )
    if known_hosts is not None and ssh_key is None:
        raise ConfigError("--known-hosts goes with --ssh-key", hint="add --ssh-key FILE")
    if ssh_key is not None:
        return GivenCredentials(
            kind="ssh",
            secret=_private_key(ssh_key),
            username=username,
            known_hosts=None if known_hosts is None else _read(known_hosts, "--known-hosts"),
        )
    if password_env is not None:
        if not username:
            raise ConfigError("--password-env needs --username USER")
        return GivenCredentials(
            kind="basic",
            secret=_from_env(environ, password_env, "--password-env"),
            username=username,
        )
    if token_env is not None:
        return GivenCredentials(
            kind="token", secret=_from_env(environ, token_env, "--token-env"), username=username
        )
    if username is not None:
        raise ConfigError(
            "--username goes with --password-env VAR (or --token-env VAR, --ssh-key FILE)"
        )
    return None


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConfigError(
            f"{option}: cannot read {path}: {err.strerror}", where=Where(file=str(path))
        ) from err


def _private_key(path: Path) -> bytes:
    key = _read(path, "--ssh-key")
    if not key.lstrip().startswith(b"-----BEGIN ") or b"PRIVATE KEY-----" not in key:
        raise ConfigError(
            "--ssh-key: this is not a private key (a public key ends in .pub and is what the "
            "server keeps)",
            where=Where(file=str(path)),
            hint="give the private half, e.g. ~/.ssh/id_ed25519 (made by ssh-keygen -N '')",
        )
    return key


def _from_env(environ: Mapping[str, str], name: str, option: str) -> bytes:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{option}: environment variable {name} is not set or empty",
            hint=f"export {name} first; appflow keeps a copy readable only by you in its data folder",
        )
    return value.encode()


def repo_credentials_dir(repo: str) -> Path:
    """Where repository REPO's credentials are kept (0700; each file 0600)."""
    return data_dir() / "repos" / repo


def _write_credentials(repo: str, given: GivenCredentials) -> RepoCredentials:
    # New names each time: the files of the registration in force stay as they are
    # until the new one is recorded, so a failed `repo add` changes nothing.
    folder = repo_credentials_dir(repo)
    tag = uuid.uuid4().hex[:8]
    secret = write_private(folder / f"{given.kind}-{tag}", given.secret)
    known = (
        None
        if given.known_hosts is None
        else write_private(folder / f"known_hosts-{tag}", given.known_hosts)
    )
    return RepoCredentials(
        kind=given.kind,
        username=given.username,
        secret_file=str(secret),
        known_hosts_file=None if known is None else str(known),
    )


def _keep_only(repo: str, credentials: RepoCredentials) -> None:
    """Remove REPO's credential files other than those CREDENTIALS names."""
    folder = repo_credentials_dir(repo)
    if not folder.is_dir():
        return
    kept = {credentials.secret_file, credentials.known_hosts_file}
    for path in folder.iterdir():
        if str(path) not in kept:
            path.unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def _check_transport(url: str, given: GivenCredentials | None) -> None:
    if given is None:
        return
    if not is_url(url):
        raise ConfigError(f"{url} is a local folder: it takes no credentials")
    if given.kind == "ssh" and not is_ssh_url(url):
        raise ConfigError(
            f"--ssh-key needs an SSH URL, and {redact_url(url)} is not one",
            hint="use ssh://git@host/org/repo.git or git@host:org/repo.git",
        )
    if given.kind != "ssh" and not is_http_url(url):
        raise ConfigError(
            f"a password or a token is sent over HTTPS, and {redact_url(url)} is not an "
            "https:// URL",
            hint="use the repository's https:// URL, or --ssh-key FILE with its SSH URL",
        )


async def register_repo(
    store: Store,
    *,
    name: str,
    url: str,
    ref: str = "HEAD",
    paths: tuple[str, ...] = (),
    credentials: GivenCredentials | None = None,
) -> list[AppRecord]:
    """Register repository NAME (a git URL or a local folder) and every app found in it,
    all or nothing: everything that can fail is checked before the first write, and the
    writes are one transaction, so a failed `repo add` leaves the store as it was.

    CREDENTIALS (for a private repository) are written to the data folder (0600) and
    used for this first fetch already; the record keeps where they are, never them.
    """
    _check_transport(url, credentials)
    record = RepoRecord(name=name, url=url, ref=ref, paths=paths)
    if credentials is not None:
        record = replace(record, auth=_write_credentials(name, credentials))
    try:
        apps = await _register(store, record)
    except BaseException:
        # What this attempt wrote goes; the registration in force keeps its files.
        _keep_only(name, await _credentials_in_force(store, name))
        raise
    _keep_only(name, record.auth)
    return apps


async def _credentials_in_force(store: Store, name: str) -> RepoCredentials:
    try:
        return (await asyncio.to_thread(store.get_repo, name)).auth
    except NotFoundError:
        return RepoCredentials()


async def _register(store: Store, record: RepoRecord) -> list[AppRecord]:
    if is_url(record.url):
        from appflow.sources import git

        try:
            fetched = await git.fetch(git_source(record))
            root = await git.checkout(git_source(record), fetched.commit)
        except SourceError as err:
            raise repository_error(err, record) from err
        record = replace(record, last_commit=fetched.commit, last_fetched=utc_now())
    else:
        root = Path(record.url).resolve()
        if not root.is_dir():
            raise ConfigError(f"{redact_url(record.url)} is neither a URL nor a folder")
        record = replace(record, url=str(root), ref="")
    existing = {a.name: a for a in await asyncio.to_thread(store.list_apps)}
    apps = await asyncio.to_thread(discover_apps, record, root, existing=existing)
    await Recorder(store).repo_registered(record, apps)
    return apps


@dataclass(frozen=True, kw_only=True)
class RepoRefresh:
    """What one look at a repository found."""

    commit: str | None
    """The commit its ref names now (None: not moved since the last look)."""
    due: tuple[str, ...] = ()
    """Apps from the repository whose folder the new commit changed (or never synced)."""


async def refresh_repo(
    store: Store,
    recorder: Recorder,
    name: str,
    *,
    polled: dict[str, str],
    commit: str | None = None,
) -> RepoRefresh:
    """Look at repository NAME's ref (or take COMMIT, from a signed webhook, as where it is).

    POLLED holds, per repository, the commit the last look worked out due apps for: no
    fetch happens when the ref has not moved since. It is the caller's memory, not the
    store's: a sync records the commit it fetched too (what `repo list` shows), and must
    not hide a push's other apps from the next poll.
    """
    from appflow.sources import git

    repo = await asyncio.to_thread(store.get_repo, name)
    try:
        if commit is None:
            commit = (await git.resolve(git_source(repo))).commit
        if commit == polled.get(name):
            return RepoRefresh(commit=None)
        # By commit: the ref is resolved already, so the fetch lists nothing again.
        await git.fetch(git_source(repo, commit=commit))
    except SourceError as err:
        raise repository_error(err, repo) from err
    due = await _due_apps(store, repo, commit)
    await recorder.repo_fetched(name, commit)
    polled[name] = commit
    return RepoRefresh(commit=commit, due=tuple(due))


async def _due_apps(store: Store, repo: RepoRecord, commit: str) -> list[str]:
    from appflow.sources import git

    due: list[str] = []
    apps = await asyncio.to_thread(store.list_apps)
    for app in apps:
        if app.repo != repo.name or app.source != "git":
            continue
        latest = await asyncio.to_thread(store.latest_revision, app.name, with_rendered=False)
        if latest is None or not isinstance(latest.source_ref, GitCommit):
            due.append(app.name)
            continue
        old = latest.source_ref.commit
        if old == commit:
            continue
        try:
            changed = await git.changed_paths(repo.url, old, commit)
        except GitRefNotFoundError:
            # The old commit left the mirror (its cache was cleared, or the
            # branch was force-pushed): compare nothing, sync.
            due.append(app.name)
            continue
        prefix = (app.path.strip("/") + "/") if app.path else ""
        if any(p.startswith(prefix) for p in changed):
            due.append(app.name)
    return due


@dataclass(frozen=True, kw_only=True)
class WebhookSecret:
    """Where repository REPO's webhook secret is read from now (None: nowhere, its webhooks
    are refused), and what the caller should be warned of."""

    repo: str
    ref: str | None
    warnings: tuple[str, ...] = ()


def set_webhook_secret(
    store: Store,
    *,
    repo: str,
    secret_file: Path | None = None,
    secret_env: str | None = None,
    clear: bool = False,
    environ: Mapping[str, str] | None = None,
) -> WebhookSecret:
    """Keep where the webhook secret of repository REPO is read from: a file (read at each
    delivery), an environment variable of the server, or nothing (CLEAR). Exactly one of
    them. Only the reference is stored, never the secret."""
    if sum(x is not None and x is not False for x in (secret_file, secret_env, clear)) != 1:
        raise ConfigError("give exactly one of --secret-file FILE, --secret-env VAR or --clear")
    ref: str | None = None
    warnings: list[str] = []
    if secret_file is not None:
        resolved, readable = _checked_secret_file(secret_file)
        ref = f"file:{resolved}"
        if readable:
            warnings.append(f"{resolved} can be read by other users; chmod 600 it")
    elif secret_env is not None:
        if not secret_env.replace("_", "").isalnum():
            raise ConfigError(f"{secret_env!r} is not an environment variable name")
        ref = f"env:{secret_env}"
        if not (os.environ if environ is None else environ).get(secret_env):
            warnings.append(
                f"{secret_env} is not set here; the appflow server reads it from its own "
                "environment"
            )
    record = store.get_repo(repo)
    store.put_repo(replace(record, webhook_secret_ref=ref))
    return WebhookSecret(repo=repo, ref=ref, warnings=tuple(warnings))


def _checked_secret_file(path: Path) -> tuple[Path, bool]:
    """PATH resolved, and whether users other than its owner can read it; refused when it
    cannot be read or is empty (every delivery would be refused)."""
    resolved = path.expanduser().resolve()
    try:
        mode = resolved.stat().st_mode
        empty = not resolved.read_bytes().strip()
    except OSError as err:
        raise ConfigError(
            f"cannot read the secret file: {err.strerror}", where=Where(file=str(resolved))
        ) from err
    if empty:
        raise ConfigError("the secret file is empty", where=Where(file=str(resolved)))
    return resolved, bool(mode & (stat.S_IRWXG | stat.S_IRWXO))
