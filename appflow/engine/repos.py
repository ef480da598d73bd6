"""Repositories: registering one with the apps found in it, and noticing when it moves.

``register_repo`` is `appflow repo add`: a git URL (fetched once, its commit checked out)
or a local folder, and an AppRecord for every app definition found under its paths.
``refresh_repo`` is one poll: it lists the remote's refs once (or takes the commit a
signed webhook named), fetches only what the mirror lacks, and says which apps the new
commit touches: those whose folder changed since the commit they were last synced from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from appflow.engine.recorder import Recorder
from appflow.engine.sources import git_source
from appflow.errors import ConfigError, GitRefNotFoundError, Where
from appflow.model.appdef import AppDefinition
from appflow.model.records import AppRecord, GitCommit, RepoRecord, utc_now
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
            f"no apps found under {', '.join(repo.paths) or '.'} in {repo.url}",
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
    return AppRecord(
        name=definition.name,
        source="git" if remote else "local",
        repo=repo.name,
        local_path=None if remote else repo.url,
        path=definition.path,
        policy=definition.sync_policy,
        labels=dict(definition.labels),
        depends_on=definition.depends_on,
        rollout=definition.rollout,
    )


async def register_repo(
    store: Store, *, name: str, url: str, ref: str = "HEAD", paths: tuple[str, ...] = ()
) -> list[AppRecord]:
    """Register repository NAME (a git URL or a local folder) and every app found in it,
    all or nothing: everything that can fail is checked before the first write, and the
    writes are one transaction, so a failed `repo add` leaves the store as it was."""
    if is_url(url):
        from appflow.sources import git

        record = RepoRecord(name=name, url=url, ref=ref, paths=paths)
        spec = git_source(record)
        fetched = await git.fetch(spec)
        root = await git.checkout(spec, fetched.commit)
        record = replace(record, last_commit=fetched.commit, last_fetched=utc_now())
    else:
        root = Path(url).resolve()
        if not root.is_dir():
            raise ConfigError(f"{url} is neither a URL nor a folder")
        record = RepoRecord(name=name, url=str(root), ref="", paths=paths)
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
    spec = git_source(repo)
    if commit is None:
        commit = (await git.resolve(spec)).commit
    if commit == polled.get(name):
        return RepoRefresh(commit=None)
    # By commit: the ref is resolved already, so the fetch lists nothing again.
    await git.fetch(git.GitSource(url=repo.url, ref=git.RefSpec.commit(commit), auth=spec.auth))
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
